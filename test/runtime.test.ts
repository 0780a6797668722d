/**
 * The streams a child's pipes become (src/internal/runtime.ts), both ways: Node's `net.Socket` on
 * the fd, and the file streams on the pipe opened again through /proc/self/fd that Bun and Deno
 * get. Both ways run here, on Node; the examples run on Bun and Deno in `.ci/runtimes`.
 */
import * as fs from "node:fs"
import type { Readable, Writable } from "node:stream"
import { assert, describe, it } from "@effect/vitest"
import * as libc from "../src/internal/libc.ts"
import * as runtime from "../src/internal/runtime.ts"
import { eventually } from "./helpers.ts"

const pipeOf = (fd: number) => fs.readlinkSync(`/proc/self/fd/${fd}`)
const pipesOpen = () =>
  fs.readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith("pipe:")
    } catch {
      return false
    }
  }).length

const readAll = (stream: Readable) =>
  new Promise<string>((resolve, reject) => {
    let text = ""
    stream.on("data", (chunk: Buffer) => (text += chunk.toString()))
    stream.once("end", () => resolve(text))
    stream.once("error", reject)
  })

const writeAll = (stream: Writable, text: string) =>
  new Promise<void>((resolve, reject) => stream.end(text, () => resolve()).once("error", reject))

describe("a child's pipes as streams", () => {
  for (const adopt of [true, false]) {
    const way = adopt ? "net.Socket on the fd (Node)" : "file streams on the pipe opened again (Bun, Deno)"
    it(`${way}: what is written arrives, the end is seen, and no fd is left`, async () => {
      const before = pipesOpen()
      const [fromChild, childOut] = libc.pipe()
      const [childIn, toChild] = libc.pipe()
      const outPipe = pipeOf(fromChild)
      // Off Node, gonso's own fd is closed at once (its number free until the next open): the
      // stream holds the runtime's own fd on the pipe.
      const readable = runtime.pipeReadable(fromChild, libc.close, adopt)
      if (!adopt) assert.throws(() => libc.statOfFd(fromChild), /EBADF/)
      const writable = runtime.pipeWritable(toChild, libc.close, adopt)
      if (!adopt) assert.throws(() => libc.statOfFd(toChild), /EBADF/)
      const read = readAll(readable)
      libc.writeAll(childOut, Buffer.from("from the child\n"))
      libc.close(childOut)
      assert.strictEqual(await read, "from the child\n")
      await writeAll(writable, "to the child\n")
      const buffer = Buffer.alloc(64)
      const count = fs.readSync(childIn, buffer)
      assert.strictEqual(buffer.toString("utf8", 0, count), "to the child\n")
      libc.close(childIn)
      readable.destroy()
      writable.destroy()
      assert.isTrue(await eventually(() => pipesOpen() === before), `a pipe (${outPipe}'s or the other) is still open: ${pipesOpen()} open, ${before} before`)
    })
  }

  it("the runtime is named as process.versions tells it", () => {
    assert.strictEqual(runtime.current.name, "node")
    assert.strictEqual(runtime.description, `node ${process.versions.node}`)
    assert.isTrue(runtime.adoptsPipes)
    assert.strictEqual(runtime.connecting, "adopt-then-connect")
    assert.isUndefined(runtime.connectionsInside("NamespacedSocket.connect"))
    assert.isUndefined(runtime.missingForThreads("PinnedThreads.layer", function Worker() {}))
    assert.include(runtime.missingForThreads("PinnedThreads.layer", undefined)?.message ?? "", "not supported on node")
  })
})
