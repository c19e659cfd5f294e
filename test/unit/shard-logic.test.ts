import { ErrorCode } from "../../schemas/errors";
import type { ExtentRef } from "../../schemas/operations";
import { ManualClock } from "../../lib/clock";
import { Prng } from "../../lib/prng";
import { TokenAuthority } from "../../bus/tokens";
import { NodeDirectory } from "../../actors/runtime/node-directory";
import { ShardLogic } from "../../actors/metadata/shard-logic";

const secret = "shard-logic-test-secret-012345678";

/** A shard logic with one job and one live node of `capacityBytes`, and what a client needs to write through it. */
function setUp(capacityBytes = 64 * 1024 * 1024) {
  const clock = new ManualClock(1_000_000);
  const tokens = new TokenAuthority(secret, clock);
  const nodes = new NodeDirectory(clock, 1_000);
  nodes.record({ nodeId: "n1", tier: "dram", addr: "127.0.0.1:1", key: "", capacityBytes, usedBytes: 0, extents: 0, cpu: 0, bytesInPerSec: 0, bytesOutPerSec: 0, sentAtMs: clock.now() });
  const freed: string[] = [];
  const shard = new ShardLogic({ shardId: "s0", extentBytesMax: 1024 * 1024 }, tokens, clock, nodes, (_job, extents) => { for (const e of extents) freed.push(e.extentId); }, Prng.forCase(1, 1));
  shard.attachJob({ jobId: "j1", name: "j", weights: [{ nodeId: "n1", weight: 1 }] });
  const token = tokens.issueJob("j1", "s0", 3_600_000);
  /** The node's receipts for a write's extents, as if it stored them with crc 7. */
  const receipts = (extents: readonly ExtentRef[]) => extents.map((e) => ({
    extentId: e.extentId, crc: 7, receipt: tokens.issueReceipt({ jobId: "j1", nodeId: e.nodeId, extentId: e.extentId, length: e.length, crc: 7 }),
  }));
  return { shard, token, receipts, freed, clock };
}

test("a create can reserve writes of the same size ahead, and a reserved write names its path at commit", () => {
  const { shard, token, receipts } = setUp();
  const created = shard.create({ token, path: "a", size: 3 * 1024 * 1024, ahead: 2 });
  expect(created.ahead).toHaveLength(2);
  expect(created.ahead!.map((w) => w.extents.reduce((s, e) => s + e.length, 0))).toEqual([3 * 1024 * 1024, 3 * 1024 * 1024]);
  shard.commit({ token, writeId: created.writeId, receipts: receipts(created.extents) });
  const r = created.ahead![0]!;
  const done = shard.commit({ token, writeId: r.writeId, receipts: receipts(r.extents), path: "b", ahead: 1, size: 3 * 1024 * 1024 });
  expect(done).toMatchObject({ path: "b", version: 1, size: 3 * 1024 * 1024 });
  expect(done.ahead).toHaveLength(1);
  expect(shard.stat({ token, path: "b" })).toMatchObject({ type: "object", size: 3 * 1024 * 1024 });
  shard.checkInvariants();
});

test("a reserved write without a path, or a write committed under another path, is refused and stays pending", () => {
  const { shard, token, receipts } = setUp();
  const created = shard.create({ token, path: "a", size: 2048, ahead: 1 });
  const r = created.ahead![0]!;
  expect(() => shard.commit({ token, writeId: r.writeId, receipts: receipts(r.extents) })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  expect(() => shard.commit({ token, writeId: created.writeId, receipts: receipts(created.extents), path: "elsewhere" })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  // Both still commit properly afterwards.
  expect(shard.commit({ token, writeId: created.writeId, receipts: receipts(created.extents), path: "a" }).path).toBe("a");
  expect(shard.commit({ token, writeId: r.writeId, receipts: receipts(r.extents), path: "c", createOnly: true }).path).toBe("c");
  expect(() => shard.create({ token, path: "s", ahead: 1 })).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
});

test("reserving ahead is best effort: on a full node the create or commit itself still stands", () => {
  const { shard, token, receipts } = setUp(3 * 1024 * 1024);
  const created = shard.create({ token, path: "a", size: 2 * 1024 * 1024, ahead: 4 });
  expect(created.ahead ?? []).toHaveLength(0);
  const done = shard.commit({ token, writeId: created.writeId, receipts: receipts(created.extents), ahead: 4, size: 2 * 1024 * 1024 });
  expect(done.ahead ?? []).toHaveLength(0);
});

test("unused reserved writes expire with the pending-write deadline and their extents are freed", () => {
  const { shard, token, freed, clock } = setUp();
  const created = shard.create({ token, path: "a", size: 1024, ahead: 2 });
  expect(shard.sweepExpiredWrites()).toBe(0);
  clock.advance(120_001);
  expect(shard.sweepExpiredWrites()).toBe(3);
  expect(freed.sort()).toEqual([created, ...created.ahead!].map((w) => w.extents[0]!.extentId).sort());
});
