import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ClientTransport, PocketClient } from "../../client/pocket";
import { projectRoot } from "../../lib/process";
import { Role, startTestCluster, type TestCluster } from "../harness/cluster";
import { loadCases, runCase, type RunEnv } from "../conformance/runner";

/*
 * Both SDKs pass the same conformance cases (test/conformance/cases.json)
 * against one real cluster, over both transports: the TypeScript SDK here,
 * the Python SDK (clients/python) as a pytest run in a child process given
 * the cluster's coordinates. It runs on the checkout's environment that
 * `scripts/provision-python.sh` makes (`npm test` runs it first), or on the
 * interpreter POCKET_PYTHON names; without one the Python test fails, saying so.
 */

const { cluster, cases } = loadCases();
const python = process.env["POCKET_PYTHON"] ?? path.join(projectRoot(), ".pocket", "python", "bin", "python");
/** Output of the child kept for the failure message (its tail). */
const outputBytesMax = 256 * 1024;
const pytestDeadlineMs = 90_000;

let t: TestCluster;
beforeAll(async () => { t = await startTestCluster({ shards: 2, dram: 2 }); });
afterAll(async () => { await t?.stop(); });

describe.each([ClientTransport.Auto, ClientTransport.Nats])("the TypeScript SDK over %s", (transport) => {
  let env: RunEnv;
  beforeAll(async () => {
    const driver = await PocketClient.connect({ servers: t.nats.url, credentials: t.auth.credentials(Role.Driver, `conformance-ts-${transport}`) });
    env = {
      driver, transport,
      connectLambda: (credentials, on) => PocketClient.connect({ servers: t.nats.url, credentials, transport: on }),
    };
  });
  afterAll(async () => { await env?.driver.close(); });

  test.each(cases.map((c, i) => [c.name, i] as const))("%s", async (_name, i) => {
    await runCase(cases[i]!, i, env, cluster);
  });
});

interface Run { readonly code: number | null; readonly signal: NodeJS.Signals | null; readonly output: string }

/** Runs a command to its end (not spawnSync: the cluster's actors share this process's event loop). */
function run(command: string, args: readonly string[], extraEnv: NodeJS.ProcessEnv, deadlineMs: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: projectRoot(), env: { ...process.env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (chunk: Buffer): void => { output = (output + chunk.toString("utf8")).slice(-outputBytesMax); };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), deadlineMs);
    child.once("error", (e) => { clearTimeout(timer); reject(e); });
    child.once("close", (code, signal) => { clearTimeout(timer); resolve({ code, signal, output }); });
  });
}

async function requirePython(): Promise<void> {
  const probe = await run(python, ["-c", "import pocket, pytest, pytest_asyncio, sys; assert sys.version_info >= (3, 11), sys.version"], {}, 30_000)
    .catch((e: unknown) => ({ code: -1, signal: null, output: String(e) }));
  if (probe.code !== 0) {
    throw new Error(
      `the Python SDK's conformance run needs ${python} (3.11 or later) with the package and its test extras: ` +
      `bash scripts/provision-python.sh (POCKET_PYTHON names another interpreter).\n${probe.output}`,
    );
  }
}

test("the Python SDK passes the same cases over both transports (pytest)", async () => {
  await requirePython();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-conformance-"));
  try {
    const junit = path.join(dir, "pytest.xml");
    const r = await run(python, ["-m", "pytest", "clients/python/tests", "-q", "-p", "no:cacheprovider", `--junitxml=${junit}`], {
      POCKET_NATS_URL: t.nats.url,
      POCKET_NATS_CREDS: t.auth.credsFile(Role.Driver, "conformance-py"),
      POCKET_CREDS: "",
      POCKET_TLS_CA: "",
      POCKET_CONFORMANCE_REQUIRED: "1",
      PYTHONDONTWRITEBYTECODE: "1",
    }, pytestDeadlineMs);
    if (r.code !== 0) throw new Error(`pytest exited with ${r.code ?? r.signal}:\n${r.output}`);
    // Every case ran over both transports: none skipped, none missing.
    const report = fs.readFileSync(junit, "utf8");
    const ran = report.match(/<testcase [^>]*name="test_conformance_case\[/g) ?? [];
    expect(ran.length).toBe(cases.length * 2);
    expect(report).not.toMatch(/<skipped/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, pytestDeadlineMs + 30_000);
