/**
 * Where gonso's worker script is, by default.
 *
 * @internal
 */

// The worker is plain (erasable) TypeScript run by Node itself; once built, it is the .js beside
// this module. tsc does not rewrite URLs, so the extension comes from this module's own URL.
const extension = import.meta.url.endsWith(".ts") ? ".ts" : ".js"

/**
 * The pinned threads' script when the layer is given none (`workerUrl`): the worker beside this
 * module. In a bundle, this module is inlined into the program and the URL names a file beside
 * the bundle that the bundler did not emit; the program then passes the URL of the worker it
 * bundled itself.
 */
export const defaultWorkerUrl = new URL(`./worker/main${extension}`, import.meta.url)
