import { heartbeatJobIdsMax } from "../../schemas/operations";
import { crc32 } from "../../lib/checksum";
import { ManualClock } from "../../lib/clock";
import { TokenAuthority } from "../../bus/tokens";
import { NodeLogic } from "../../actors/storage/node-logic";
import { DramStore } from "../../actors/storage/dram-store";
import { BufferPool } from "../../lib/buffer-pool";
import { ErrorCode } from "../../schemas/errors";

const secret = "node-logic-test-secret-0123456789";
const idle = { cpu: 0, bytesInPerSec: 0, bytesOutPerSec: 0 };

/** A node holding one 1-byte extent for each of `jobs` jobs, written through its grant checks. */
async function nodeWithJobs(jobs: number): Promise<NodeLogic> {
  const clock = new ManualClock(1_000_000);
  const tokens = new TokenAuthority(secret, clock);
  const node = new NodeLogic("n1", new DramStore(1024 * 1024), tokens, clock);
  const bytes = Buffer.from([7]);
  for (let i = 0; i < jobs; i++) {
    const jobId = `j-${i.toString().padStart(4, "0")}`;
    const grant = tokens.issueGrant({ jobId, nodeId: "n1", extentId: "x.1", length: 1 }, 60_000);
    await node.write({ token: tokens.issueJob(jobId, "s0", 60_000), extentId: "x.1", grant, crc: crc32(bytes) }, bytes);
  }
  return node;
}

test("heartbeats name every job a node holds, a bounded window at a time", async () => {
  const node = await nodeWithJobs(600);
  const seen = new Set<string>();
  for (let beat = 0; beat < 3; beat++) {
    const ids = node.heartbeat("", "", idle).jobIds ?? [];
    expect(ids.length).toBeLessThanOrEqual(heartbeatJobIdsMax);
    for (const id of ids) seen.add(id);
  }
  expect(seen.size).toBe(600);
  // And round again from the start.
  expect(node.heartbeat("", "", idle).jobIds?.[0]).toBe("j-0000");
});

test("a node with few jobs names them all in every heartbeat, and none once they are dropped", async () => {
  const node = await nodeWithJobs(3);
  expect(node.heartbeat("", "", idle).jobIds).toEqual(["j-0000", "j-0001", "j-0002"]);
  await node.dropJob({ jobId: "j-0001" });
  expect(node.heartbeat("", "", idle).jobIds).toEqual(["j-0000", "j-0002"]);
});

test("an extent goes to another node only if it matches its committed crc, and as a copy of its own", async () => {
  const clock = new ManualClock(1_000_000);
  const tokens = new TokenAuthority(secret, clock);
  const store = new DramStore(1024 * 1024, undefined, new BufferPool(1024 * 1024));
  const node = new NodeLogic("n1", store, tokens, clock);
  const bytes = Buffer.from("the extent's bytes");
  const grant = tokens.issueGrant({ jobId: "j", nodeId: "n1", extentId: "x.1", length: bytes.byteLength }, 60_000);
  await node.write({ token: tokens.issueJob("j", "s0", 60_000), extentId: "x.1", grant, crc: crc32(bytes) }, bytes);
  const to = { nodeId: "n2", addr: "127.0.0.1:1", key: "k", extentId: "y.1", grant: "g" };
  const token = tokens.issueJob("j", "s0", 60_000);
  const sent = await node.copySource({ jobId: "j", extentId: "x.1", crc: crc32(bytes), token, to });
  expect(sent.equals(bytes)).toBe(true);
  expect(store.readsOut).toBe(0);
  const stored = (await store.read("j", "x.1", 0, undefined)).bytes;
  expect(sent.buffer).not.toBe(stored.buffer);
  await expect(node.copySource({ jobId: "j", extentId: "x.1", crc: (crc32(bytes) ^ 1) >>> 0, token, to })).rejects.toMatchObject({ code: ErrorCode.Integrity });
  await expect(node.copySource({ jobId: "j", extentId: "x.2", crc: 0, token, to })).rejects.toMatchObject({ code: ErrorCode.NotFound });
  // A token the destination would refuse is refused here, before any byte is read.
  for (const bad of ["t", tokens.issueJob("other", "s0", 60_000)]) {
    await expect(node.copySource({ jobId: "j", extentId: "x.1", crc: crc32(bytes), token: bad, to })).rejects.toMatchObject({ code: ErrorCode.Unauthorized });
  }
});
