/**
 * The `PinnedThreads` service: its one definition (the public `PinnedThreads` module documents
 * it, builds it and re-exports it). What a layer built the service with (its pool) is carried by
 * the service value, see `thread/pool.ts`.
 *
 * @internal
 */
import { Context, type Effect } from "effect"

/**
 * A point-in-time count of the service's threads.
 *
 * @since 0.1.0
 * @category models
 */
export interface Stats {
  /** Threads waiting for work. */
  readonly idle: number
  /** Threads serving requests or held by a lease (`NamespaceSet.enter`, a module task). */
  readonly busy: number
  /** Requests and leases waiting for a thread. */
  readonly pending: number
  /** Threads started since the layer was built. */
  readonly spawned: number
  /** Threads terminated because they could not be restored (or were not to be), or died. */
  readonly dropped: number
  /**
   * The drops by the class of their reason (the `reason` attribute of
   * `gonso_pinned_threads_dropped_total`): `no-restore`, `tainted`, `moved`, `restore-failed`,
   * `interrupted`, `died`, `exited`. Classes with no drop are left out.
   */
  readonly droppedByReason: Readonly<Partial<Record<"no-restore" | "tainted" | "moved" | "restore-failed" | "interrupted" | "died" | "exited" | "failed-to-start", number>>>
  /** Threads terminated because they were idle past their time to live, or at shutdown. */
  readonly retired: number
}

/**
 * The service. Most code never calls it directly: `NamespaceSet.run`, `enter` and `unshare` do.
 *
 * @since 0.1.0
 * @category services
 */
export class PinnedThreads extends Context.Service<PinnedThreads, {
  /** Counts of idle, busy, spawned, dropped and retired threads. */
  readonly stats: Effect.Effect<Stats>
}>()("gonso/PinnedThreads") {}
