import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Decision } from "../../actors/controller/inputs";
import { decisionLine, diffLines, readExpected, replayInputs, replayTrace } from "../../actors/controller/replay";
import { readTrace } from "../../actors/controller/trace";
import { scenarios, simulate, tracePolicy } from "../replay/simulate";

const dir = path.join(__dirname, "..", "replay");
const names = scenarios.map((s) => s.name);

async function inputsOf(name: string) {
  const out = [];
  for await (const i of readTrace(path.join(dir, `${name}.trace.ndjson`))) out.push(i);
  return out;
}

/** Active nodes over the decisions: the set after each one, and its peak. */
function activeNodes(decisions: readonly Decision[]): { final: Set<string>; peak: number } {
  const active = new Set<string>();
  let peak = 0;
  for (const d of decisions) {
    if (d.kind === "node.active") active.add(d.nodeId);
    if (d.kind === "node.removed" || d.kind === "node.failed" || d.kind === "node.draining") active.delete(d.nodeId);
    peak = Math.max(peak, active.size);
  }
  return { final: active, peak };
}

describe.each(names)("trace %s", (name) => {
  test("replays to exactly the expected decisions, every time", async () => {
    const expected = readExpected(path.join(dir, `${name}.expected.ndjson`));
    expect(expected.length).toBeGreaterThan(3);
    for (let run = 0; run < 3; run++) {
      const { decisions } = await replayTrace(path.join(dir, `${name}.trace.ndjson`));
      expect(diffLines(expected, decisions.map(decisionLine))).toEqual([]);
    }
  });

  test("the checked-in trace is what the simulator records today", async () => {
    const scenario = scenarios.find((s) => s.name === name)!;
    const { inputs } = simulate(scenario);
    expect(inputs.map((i) => JSON.stringify(i))).toEqual((await inputsOf(name)).map((i) => JSON.stringify(i)));
  });
});

describe("what the traces show", () => {
  const decisionsOf = async (name: string): Promise<Decision[]> => (await replayTrace(path.join(dir, `${name}.trace.ndjson`))).decisions;

  test("scale-out: network above the band launches a node that becomes active and joins the busy job's weights", async () => {
    const d = await decisionsOf("scale-out");
    const out = d.find((x): x is Extract<Decision, { kind: "scale.out" }> => x.kind === "scale.out")!;
    expect(out.measurements.network).toBeGreaterThan(tracePolicy.bandHigh);
    const launch = d.find((x) => x.kind === "node.launch" && x.atMs === out.atMs) as Extract<Decision, { kind: "node.launch" }>;
    expect(launch).toBeDefined();
    expect(d.some((x) => x.kind === "node.active" && x.nodeId === launch.nodeId && x.launched)).toBe(true);
    const weights = d.filter((x): x is Extract<Decision, { kind: "job.weights" }> => x.kind === "job.weights" && x.atMs > out.atMs);
    expect(weights.some((w) => w.weights.some((x) => x.nodeId === launch.nodeId && x.weight > 0))).toBe(true);
  });

  test("scale-in: after the jobs end the tier drains back to its minimum, one node per cooldown", async () => {
    const d = await decisionsOf("scale-in");
    const { final, peak } = activeNodes(d);
    expect(peak).toBeGreaterThanOrEqual(4);
    expect(final.size).toBe(tracePolicy.nodeTypes[0]!.minNodes);
    const ins = d.filter((x) => x.kind === "scale.in");
    expect(ins.length).toBe(peak - final.size);
    for (let i = 1; i < ins.length; i++) expect(ins[i]!.atMs - ins[i - 1]!.atMs).toBeGreaterThanOrEqual(tracePolicy.cooldownMs);
    // Never a node that a live job still had reserved.
    for (const s of ins as Array<Extract<Decision, { kind: "scale.in" }>>) {
      const later = d.filter((x): x is Extract<Decision, { kind: "job.weights" }> => x.kind === "job.weights" && x.atMs >= s.atMs);
      expect(later.every((w) => !w.weights.some((x) => x.nodeId === s.nodeId))).toBe(true);
    }
  });

  test("node failure: failed within three heartbeat intervals (plus one tick), weights recomputed without it", async () => {
    const d = await decisionsOf("node-failure");
    const failed = d.find((x): x is Extract<Decision, { kind: "node.failed" }> => x.kind === "node.failed")!;
    expect(failed.nodeId).toBe("dram-1");
    const lastHeard = failed.lastSeenMs;
    expect(failed.atMs - lastHeard).toBeGreaterThan(tracePolicy.heartbeatIntervalMs * tracePolicy.heartbeatsMissedMax);
    expect(failed.atMs - lastHeard).toBeLessThanOrEqual(tracePolicy.heartbeatIntervalMs * (tracePolicy.heartbeatsMissedMax + 1));
    const w = d.find((x): x is Extract<Decision, { kind: "job.weights" }> => x.kind === "job.weights" && x.atMs === failed.atMs)!;
    expect(w.weights.map((x) => x.nodeId)).not.toContain("dram-1");
    expect(w.weights.reduce((s, x) => s + x.weight, 0)).toBeCloseTo(1, 5);
  });

  test("three jobs: the cluster grows as they register and shrinks back as they end", async () => {
    const d = await decisionsOf("three-jobs");
    const { final, peak } = activeNodes(d);
    expect(peak).toBeGreaterThanOrEqual(4);
    expect(final.size).toBe(2);
    for (const j of ["j-sort", "j-video", "j-compile"]) {
      expect(d.some((x) => x.kind === "job.registered" && x.jobId === j)).toBe(true);
      expect(d.some((x) => x.kind === "job.deregistered" && x.jobId === j)).toBe(true);
    }
    expect(d.filter((x) => x.kind === "node.launch").length).toBe(peak - 2);
  });

  test("lease expiry: a driver that stops renewing loses its job when the lease runs out", async () => {
    const inputs = await inputsOf("lease-expiry");
    const lastRenew = Math.max(...inputs.filter((i) => i.kind === "job.renew").map((i) => i.atMs));
    const d = replayInputs(inputs).decisions;
    const expired = d.find((x): x is Extract<Decision, { kind: "job.expired" }> => x.kind === "job.expired")!;
    expect(expired.jobId).toBe("j-crashy");
    expect(expired.leaseExpiresAtMs).toBe(lastRenew + 10_000);
    expect(expired.atMs).toBeGreaterThanOrEqual(lastRenew + 10_000);
    expect(expired.atMs).toBeLessThan(lastRenew + 10_000 + tracePolicy.heartbeatIntervalMs);
  });
});

describe("an edited trace", () => {
  test("a node that never reports is caught as a difference", async () => {
    const inputs = (await inputsOf("scale-out")).filter((i) => !(i.kind === "node.heartbeat" && i.hb.nodeId === "dram-auto-1"));
    const expected = readExpected(path.join(dir, "scale-out.expected.ndjson"));
    const diff = diffLines(expected, replayInputs(inputs).decisions.map(decisionLine));
    expect(diff.length).toBeGreaterThan(0);
    expect(diff.some((x) => x.op === "-" && x.line.includes('"kind":"node.active"') && x.line.includes("dram-auto-1"))).toBe(true);
  });

  test("pocket replay --expect exits 1 and prints the difference", async () => {
    const { spawnSync } = await import("node:child_process");
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-replay-"));
    try {
      const lines = fs.readFileSync(path.join(dir, "lease-expiry.trace.ndjson"), "utf8").split("\n");
      // The driver's last renewal comes two seconds later: the expiry moves.
      const last = lines.map((l, i) => (l.includes('"kind":"job.renew"') ? i : -1)).filter((i) => i >= 0).pop()!;
      const renew = JSON.parse(lines[last]!) as { atMs: number };
      lines[last] = JSON.stringify({ ...renew, atMs: renew.atMs + 2_000 });
      const trace = path.join(tmp, "edited.ndjson");
      fs.writeFileSync(trace, lines.join("\n"));
      const cli = path.join(__dirname, "..", "..", "dist", "cli", "pocket.js");
      const same = spawnSync(process.execPath, [cli, "replay", path.join(dir, "lease-expiry.trace.ndjson"), "--expect", path.join(dir, "lease-expiry.expected.ndjson")], { encoding: "utf8" });
      expect(same.status).toBe(0);
      expect(same.stdout).toMatch(/as expected/);
      const r = spawnSync(process.execPath, [cli, "replay", trace, "--expect", path.join(dir, "lease-expiry.expected.ndjson")], { encoding: "utf8" });
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(/^- expected #\d+: .*job\.expired/m);
      expect(r.stdout).toMatch(/^\+ replayed #\d+: .*job\.expired/m);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});
