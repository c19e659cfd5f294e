import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pidOfProfileFile, profilesIn, summarizeProfile, summaryText, type CpuProfile } from "../../bench/profile";

test("a real CPU profile is summarized by function: a busy loop's function comes first, with most of the samples", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-prof-"));
  try {
    const script = "function spinForAWhile(){let x=0;const end=Date.now()+400;while(Date.now()<end){x+=Math.sqrt(x+1)}return x}spinForAWhile();";
    const r = spawnSync(process.execPath, ["--cpu-prof", `--cpu-prof-dir=${dir}`, "-e", script], { encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(0);
    const found = profilesIn(dir);
    expect(found.size).toBe(1);
    const [[pid, file]] = [...found.entries()];
    expect(pid).toBe(r.pid);
    const summary = summarizeProfile(JSON.parse(fs.readFileSync(file!, "utf8")) as CpuProfile, 5);
    expect(summary.sampledUs).toBeGreaterThan(300_000);
    expect(summary.top[0]!.where).toMatch(/^spinForAWhile \(/);
    expect(summary.top[0]!.share).toBeGreaterThan(0.5);
    expect(summary.busyUs).toBeLessThanOrEqual(summary.sampledUs);
    expect(summaryText("probe", summary).split("\n")[1]).toContain("spinForAWhile");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("self time is charged to the sampled function, idle is left out of the top, and shares are of all sampled time", () => {
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 } },
      { id: 2, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
      { id: 3, callFrame: { functionName: "decode", url: "file:///app/dist/bus/frame.js", lineNumber: 9 } },
      { id: 4, callFrame: { functionName: "", url: "file:///app/dist/lib/x.js", lineNumber: 0 } },
    ],
    samples: [3, 3, 2, 4, 3],
    timeDeltas: [10, 10, 50, 20, 10],
  };
  const s = summarizeProfile(profile);
  expect(s.sampledUs).toBe(100);
  expect(s.busyUs).toBe(50);
  expect(s.top.map((h) => [h.where, h.selfUs, h.share])).toEqual([["decode (bus/frame.js:10)", 30, 0.3], ["(anonymous) (lib/x.js:1)", 20, 0.2]]);
  expect(pidOfProfileFile("/tmp/CPU.20261202.140138.8151.0.001.cpuprofile")).toBe(8151);
  expect(pidOfProfileFile("/tmp/other.json")).toBeUndefined();
});
