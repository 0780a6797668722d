/**
 * gonso: safe Linux namespace manipulation for Node.js, built on Effect.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as NamespaceSet from "./NamespaceSet.ts"
/** @since 0.1.0 */
export * as NamespaceKind from "./NamespaceKind.ts"
/** @since 0.1.0 */
export * as PinnedThreads from "./PinnedThreads.ts"
/** @since 0.1.0 */
export * as Task from "./Task.ts"
/** @since 0.1.0 */
export * as NamespaceError from "./NamespaceError.ts"
/** @since 0.1.0 */
export * as NamespacePool from "./NamespacePool.ts"
/** @since 0.1.0 */
export * as NamespacedSocket from "./NamespacedSocket.ts"
/** @since 0.1.0 */
export * as NamespacedHttpServer from "./NamespacedHttpServer.ts"
/** @since 0.1.0 */
export * as NamespacedHttpClient from "./NamespacedHttpClient.ts"
/** @since 0.1.0 */
export * as NamespacedProcess from "./NamespacedProcess.ts"
/** @since 0.1.0 */
export * as Network from "./Network.ts"
