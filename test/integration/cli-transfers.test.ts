import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { patternBytes } from "../harness/cluster";
import { pocketCli, pocketUp, registerJob, runPocket, storageNodeProcesses, type PocketUp } from "../harness/pocket-cli";

/**
 * `pocket put` and `pocket get` against a real cluster (`pocket up`): a
 * progress bar on a terminal for large transfers and nothing when piped; a
 * get that fails, however, leaves no file behind.
 */

const MiB = 1024 * 1024;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-cli-transfers-"));
let up: PocketUp;
let jobId: string;
let env: NodeJS.ProcessEnv;
/** 16 MiB: over the 8 MiB from which a terminal shows progress. */
const big = patternBytes(16 * MiB + 5, 7);
const bigFile = path.join(tmp, "big.bin");

function pocket(args: string[], input?: Buffer): ReturnType<typeof runPocket> {
  return runPocket(args, env, input);
}

/** `script` (util-linux) gives the command a pseudo-terminal, as a user at a terminal runs it. */
const hasScript = spawnSync("sh", ["-c", "command -v script"]).status === 0;

/** Runs `pocket ARGS` on a pseudo-terminal; returns its exit status and everything the terminal showed (stdout and stderr). */
function onTerminal(args: string[]): { status: number | null; shown: string } {
  const quoted = [process.execPath, pocketCli, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const r = spawnSync("script", ["-qec", quoted, "/dev/null"], { env, maxBuffer: 64 * MiB });
  return { status: r.status, shown: r.stdout.toString() };
}

/** Files in `dir` (temporary ones included). */
function filesIn(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

beforeAll(async () => {
  up = await pocketUp(["--dram", "2", "--shards", "1", "--data-dir", path.join(tmp, "cluster")]);
  // No hints: two nodes' worth, so the job's objects are laid out over both nodes.
  const job = registerJob(up.env, "transfers");
  jobId = job.jobId;
  env = job.env;
  fs.writeFileSync(bigFile, big);
}, 40_000);

afterAll(async () => {
  await up?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A bar line: label, bar, percentage, bytes of the total, a rate, and an ETA or the time taken. */
const barLine = (label: string): RegExp => new RegExp(`${label} +\\[[#.]{30}\\] +\\d+% +[\\d.]+ (B|KiB|MiB)/16\\.0 MiB +[\\d.]+ (B|KiB|MiB|GiB)/s +(ETA|in) [\\d.]+s`);

(hasScript ? test : test.skip)("a terminal shows a progress bar, redrawn in place, for a put and a get of 16 MiB; not for 1 MiB, nor with --no-progress", () => {
  const put = onTerminal(["put", jobId, "tty/big", bigFile]);
  expect(put.status).toBe(0);
  expect(put.shown).toMatch(barLine("put"));
  expect(put.shown).toContain("\r");
  expect(put.shown).toMatch(/put +\[#{30}\] 100% +16\.0 MiB\/16\.0 MiB .* in [\d.]+s/);
  const out = path.join(tmp, "tty.out");
  const get = onTerminal(["get", jobId, "tty/big", out]);
  expect(get.status).toBe(0);
  expect(get.shown).toMatch(barLine("get"));
  expect(get.shown).toMatch(/get +\[#{30}\] 100%/);
  expect(fs.readFileSync(out).equals(big)).toBe(true);

  fs.writeFileSync(path.join(tmp, "small.bin"), big.subarray(0, MiB));
  const small = onTerminal(["put", jobId, "tty/small", path.join(tmp, "small.bin")]);
  expect(small.status).toBe(0);
  expect(small.shown).not.toContain("[");
  const quiet = onTerminal(["get", jobId, "tty/big", out, "--no-progress"]);
  expect(quiet.status).toBe(0);
  expect(quiet.shown).toBe("");
});

test("piped, a put and a get show no progress; --progress prints a line per tenth instead of redrawing", () => {
  const put = pocket(["put", jobId, "piped/big", bigFile]);
  expect(put.status).toBe(0);
  expect(put.stderr).toBe("");
  const get = pocket(["get", jobId, "piped/big"]);
  expect(get.status).toBe(0);
  expect(get.stdout.equals(big)).toBe(true);
  expect(get.stderr).toBe("");

  const forced = pocket(["get", jobId, "piped/big", path.join(tmp, "forced.out"), "--progress"]);
  expect(forced.status).toBe(0);
  expect(forced.stderr).not.toContain("\r");
  const lines = forced.stderr.trim().split("\n");
  for (const l of lines) expect(l).toMatch(barLine("get"));
  expect(lines.length).toBeGreaterThanOrEqual(2);
  expect(lines.length).toBeLessThanOrEqual(11);
  expect(lines.at(-1)).toMatch(/100% +16\.0 MiB\/16\.0 MiB/);
});

test("a get of a missing object exits 1 with error NotFound and leaves no file; an existing destination is untouched", () => {
  const dir = fs.mkdtempSync(path.join(tmp, "missing-"));
  const r = pocket(["get", jobId, "no/such/key", path.join(dir, "out.bin")]);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/^error NotFound: /m);
  expect(filesIn(dir)).toEqual([]);

  fs.writeFileSync(path.join(dir, "kept.bin"), "old contents");
  const again = pocket(["get", jobId, "no/such/key", path.join(dir, "kept.bin"), "--progress"]);
  expect(again.status).toBe(1);
  expect(again.stderr).toMatch(/^error NotFound: /m);
  expect(filesIn(dir)).toEqual(["kept.bin"]);
  expect(fs.readFileSync(path.join(dir, "kept.bin"), "utf8")).toBe("old contents");
});

test("an object deleted while it streams to a pipe: the get fails with NotFound after a prefix of its bytes, never other bytes", async () => {
  const size = 40 * MiB;
  const data = patternBytes(size, 11);
  fs.writeFileSync(path.join(tmp, "doomed.bin"), data);
  expect(pocket(["put", jobId, "doomed", path.join(tmp, "doomed.bin")]).status).toBe(0);
  const get = spawn(process.execPath, [pocketCli, "get", jobId, "doomed", "-"], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  get.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => get.once("exit", resolve));
  // The first bytes arrive; then nothing is read, so the get waits on the full pipe (with at most its window of extents fetched).
  const chunks: Buffer[] = [await new Promise<Buffer>((resolve) => get.stdout.once("data", resolve))];
  get.stdout.pause();
  expect(pocket(["rm", jobId, "doomed"]).status).toBe(0);
  // Once the nodes have freed its extents, every read of one fails.
  await waitFreed();
  get.stdout.on("data", (d: Buffer) => chunks.push(d));
  get.stdout.resume();
  expect(await exited).toBe(1);
  expect(stderr).toMatch(/^error NotFound: /m);
  const got = Buffer.concat(chunks);
  expect(got.byteLength).toBeGreaterThan(0);
  expect(got.byteLength).toBeLessThan(size);
  expect(got.equals(data.subarray(0, got.byteLength))).toBe(true);
});

/**
 * Waits until the nodes hold no more than the job's live objects (every one
 * of them over the inline size, so on the nodes): a deleted object's extents
 * are freed. The nodes report what they hold in their heartbeats.
 */
async function waitFreed(): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const nodes = JSON.parse(pocket(["nodes", "--json"]).stdout.toString()) as Array<{ usedBytes: number }>;
    const live = (JSON.parse(pocket(["count", jobId, "--recursive", "--json"]).stdout.toString()) as { bytes: number }).bytes;
    if (nodes.reduce((sum, n) => sum + n.usedBytes, 0) <= live) return;
    if (Date.now() > deadline) throw new Error("the nodes did not free the deleted object's extents within 15 s");
    await new Promise((r) => setTimeout(r, 200));
  }
}

test("a get that fails midway (a storage node killed) leaves no file, keeps an existing one, and truncates a regular-file stdout back", () => {
  expect(pocket(["put", jobId, "striped", bigFile]).status).toBe(0);
  // Kill a node the job's objects are laid out on (a job without hints has two nodes' worth: both).
  const nodes = JSON.parse(pocket(["nodes", "--json"]).stdout.toString()) as Array<{ nodeId: string; jobWeights: Array<{ jobId: string; weight: number }> }>;
  const holding = nodes.filter((n) => n.jobWeights.some((w) => w.jobId === jobId && w.weight > 0)).map((n) => n.nodeId);
  const pids = storageNodeProcesses(up.process.pid!);
  expect(holding.length).toBeGreaterThan(0);
  expect([...pids.keys()].sort()).toEqual(nodes.map((n) => n.nodeId).sort());
  process.kill(pids.get(holding[0]!)!, "SIGKILL");

  const dir = fs.mkdtempSync(path.join(tmp, "killed-"));
  const r = pocket(["get", jobId, "striped", path.join(dir, "out.bin")]);
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/^error NodeUnavailable: /m);
  expect(filesIn(dir)).toEqual([]);

  fs.writeFileSync(path.join(dir, "kept.bin"), "old contents");
  const again = pocket(["get", jobId, "striped", path.join(dir, "kept.bin")]);
  expect(again.status).toBe(1);
  expect(filesIn(dir)).toEqual(["kept.bin"]);
  expect(fs.readFileSync(path.join(dir, "kept.bin"), "utf8")).toBe("old contents");

  // Standard output redirected to a file (`>> app.log`): what the failed get wrote is taken back out.
  const log = path.join(dir, "app.log");
  fs.writeFileSync(log, "header\n");
  const fd = fs.openSync(log, "a");
  let toFile: ReturnType<typeof spawnSync>;
  try {
    toFile = spawnSync(process.execPath, [pocketCli, "get", jobId, "striped", "-"], { env, stdio: ["ignore", fd, "pipe"] });
  } finally {
    fs.closeSync(fd);
  }
  expect(toFile.status).toBe(1);
  expect(toFile.stderr.toString()).toMatch(/^error NodeUnavailable: /m);
  expect(fs.readFileSync(log, "utf8")).toBe("header\n");
});
