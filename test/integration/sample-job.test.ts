import { spawnSync } from "node:child_process";
import path from "node:path";
import { projectRoot } from "../../deploy/local-cluster";

test("the sample sort job runs end to end through a local cluster and checks its output", () => {
  const main = path.join(projectRoot(), "dist", "examples", "sort", "main.js");
  const r = spawnSync(process.execPath, [main, "--size", "8MiB", "--maps", "4", "--reduces", "3", "--workers", "2"], { encoding: "utf8", timeout: 120_000 });
  expect(r.stderr).not.toContain("failed");
  expect(r.status).toBe(0);
  expect(r.stdout).toContain("check       OK: 83886 records, sorted, checksums match");
  expect(r.stdout).toMatch(/map\s+\d+\.\d+ s/);
  expect(r.stdout).toContain("deregistration freed 8.00 MiB");
});
