import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { startTestCluster, type TestCluster } from "../harness/cluster";

/**
 * The SDK as a lambda author gets it: `npm pack` of client/, installed from
 * the tarball into a fresh project, type-checked by the repository's tsc as
 * an ESM (.mts) and a CommonJS (.cts) consumer under strict settings, then
 * both run with plain node against a real cluster, putting and getting
 * objects byte for byte.
 */

const root = projectRoot();
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc");
/** What a lambda must not get with the SDK: the cluster's own dependencies, native addons and build tools. */
const serverOnly = ["better-sqlite3", "pg", "xstate", "kysely", "node-addon-api", "node-gyp", "@kubernetes/client-node", "prom-client", "commander"];
/** Objects each consumer puts and reads back: empty, inline, and several extents. */
const sizes = [0, 100, 3 * 1024 * 1024 + 7];

interface Ran { readonly status: number | null; readonly stdout: string; readonly stderr: string }

/** Runs a command to its end (without blocking the event loop: the cluster runs in this process). */
function run(command: string, args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<Ran> {
  // An outer `npm test` passes its own npm settings in npm_* variables: the commands here are a user's, not the run's.
  const env = Object.fromEntries(Object.entries(options.env ?? process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_")));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
    child.on("error", (e) => { clearTimeout(timer); reject(e); });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

function expectOk(r: Ran, what: string): void {
  if (r.status !== 0) throw new Error(`${what} failed (status ${r.status}):\n${r.stdout}\n${r.stderr}`);
}

/** What both consumers run: put and get each size, byte for byte; a missing key is the package's NotFoundError. */
const consumerBody = `
async function roundTrip(job: PocketJob, key: string, size: number): Promise<{ key: string; size: number; sha256: string }> {
  const data = randomBytes(size);
  const put = await job.put(key, data, { timeoutMs: 20_000 });
  if (put.size !== size) throw new Error(key + ": put reports " + put.size + " bytes, not " + size);
  const back: Buffer = await job.get(key, { timeoutMs: 20_000, retry: { attemptsMax: 2 } });
  if (!back.equals(data)) throw new Error(key + ": the bytes read back differ from those put");
  return { key, size, sha256: createHash("sha256").update(data).digest("hex") };
}

async function main(dual: boolean): Promise<void> {
  const pocket = await PocketClient.connect({ servers: process.env["POCKET_NATS_URL"]!, credentials: credentialsFromEnv() });
  try {
    const job = pocket.job(process.env["POCKET_TOKEN"]!);
    const objects = [];
    for (const size of ${JSON.stringify(sizes)}) objects.push(await roundTrip(job, process.env["POCKET_SDK_TEST_PREFIX"] + "/" + size, size));
    const missing = await job.get(process.env["POCKET_SDK_TEST_PREFIX"] + "/missing").then(() => "found", (e: unknown) => e instanceof NotFoundError && isPocketError(e, ErrorCode.NotFound) ? "NotFoundError" : String(e));
    console.log(JSON.stringify({ objects, missing, dual }));
  } finally {
    await pocket.close();
  }
}

/** Never called: the types must refuse what the SDK refuses at run time. */
export function refused(job: PocketJob): unknown[] {
  return [
    // @ts-expect-error a number is not bytes
    job.put("k", 42),
    // @ts-expect-error a stream goes to putStream
    job.put("k", Readable.from([Buffer.from("x")])),
  ];
}
`;

const esmConsumer = `
import { createHash, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { Readable } from "node:stream";
import { credentialsFromEnv, ErrorCode, isPocketError, NotFoundError, PocketClient, PocketError, type PocketJob } from "@pocket-on-nats/sdk";
${consumerBody}
// import and require give the same SDK (one PocketError class for instanceof).
const required = createRequire(import.meta.url)("@pocket-on-nats/sdk") as { PocketError: unknown };
await main(required.PocketError === PocketError);
`;

const cjsConsumer = `
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { credentialsFromEnv, ErrorCode, isPocketError, NotFoundError, PocketClient, type PocketJob } from "@pocket-on-nats/sdk";
${consumerBody}
main(true).catch((e: unknown) => { console.error(e); process.exitCode = 1; });
`;

const consumerTsconfig = {
  compilerOptions: {
    target: "ES2022", module: "nodenext", moduleResolution: "nodenext", lib: ["ES2022"], strict: true, noUncheckedIndexedAccess: true, skipLibCheck: false, types: ["node"], typeRoots: [path.join(root, "node_modules", "@types")], outDir: "out", rootDir: "src",
  },
  files: ["src/esm.mts", "src/cjs.cts"],
};

/** Every package.json under node_modules (one level of scope), with its folder. */
function installedPackages(nodeModules: string): Array<{ dir: string; pkg: { name: string; scripts?: Record<string, string>; gypfile?: boolean } }> {
  const out = [];
  for (const e of fs.readdirSync(nodeModules)) {
    if (e.startsWith(".")) continue;
    const dirs = e.startsWith("@") ? fs.readdirSync(path.join(nodeModules, e)).map((s) => path.join(nodeModules, e, s)) : [path.join(nodeModules, e)];
    for (const dir of dirs) out.push({ dir, pkg: JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) });
  }
  return out;
}

function filesUnder(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) filesUnder(p, out);
    else out.push(p);
  }
  return out;
}

let work: string;
let consumer: string;
let packed: { filename: string; files: Array<{ path: string }> };
let t: TestCluster;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), "pocket-sdk-package-"));
  consumer = path.join(work, "consumer");
  const cluster = startTestCluster({ shards: 1, dram: 1 });
  try {
    // prepack builds the package (tsc with declarations, then the ESM entry).
    const pack = await run("npm", ["pack", "--json", "--pack-destination", work], { cwd: path.join(root, "client"), timeoutMs: 90_000 });
    expectOk(pack, "npm pack");
    packed = (JSON.parse(pack.stdout.slice(pack.stdout.indexOf("["))) as Array<typeof packed>)[0]!;
    fs.mkdirSync(path.join(consumer, "src"), { recursive: true });
    fs.writeFileSync(path.join(consumer, "package.json"), JSON.stringify({ name: "sdk-consumer", version: "1.0.0", private: true }));
    const install = await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", path.join(work, packed.filename)], { cwd: consumer, timeoutMs: 90_000 });
    expectOk(install, "npm install of the tarball");
    fs.writeFileSync(path.join(consumer, "src", "esm.mts"), esmConsumer);
    fs.writeFileSync(path.join(consumer, "src", "cjs.cts"), cjsConsumer);
    fs.writeFileSync(path.join(consumer, "tsconfig.json"), JSON.stringify(consumerTsconfig, null, 2));
  } finally {
    t = await cluster;
  }
}, 150_000);

afterAll(async () => {
  await t?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test("the tarball holds the compiled SDK and its types, nothing of the cluster", () => {
  const files = packed.files.map((f) => f.path);
  expect(files).toEqual(expect.arrayContaining([
    "package.json", "README.md", "dist/client/index.js", "dist/client/index.d.ts", "dist/esm/index.mjs", "dist/esm/index.d.mts",
  ]));
  const outside = files.filter((f) => !/^dist\/(client|bus|schemas|lib)\/[\w.-]+\.(js|d\.ts)$/.test(f) && !/^dist\/esm\/index\.(mjs|d\.mts)$/.test(f) && f !== "package.json" && f !== "README.md");
  expect(outside).toEqual([]);
  const manifest = JSON.parse(fs.readFileSync(path.join(consumer, "node_modules", "@pocket-on-nats", "sdk", "package.json"), "utf8")) as { scripts?: Record<string, string>; dependencies?: Record<string, string> };
  expect(Object.keys(manifest.scripts ?? {}).filter((s) => /install|prepare/.test(s))).toEqual([]);
  expect(Object.keys(manifest.dependencies ?? {}).sort()).toEqual(["@nats-io/jetstream", "@nats-io/transport-node", "@sinclair/typebox"]);
});

test("installing it builds nothing: no native addon, no install script, none of the cluster's dependencies", () => {
  const nodeModules = path.join(consumer, "node_modules");
  const installed = installedPackages(nodeModules);
  expect(installed.map((p) => p.pkg.name)).toContain("@pocket-on-nats/sdk");
  expect(installed.map((p) => p.pkg.name).filter((n) => serverOnly.includes(n))).toEqual([]);
  const building = installed.filter((p) => p.pkg.gypfile === true || ["preinstall", "install", "postinstall"].some((s) => p.pkg.scripts?.[s] !== undefined));
  expect(building.map((p) => p.pkg.name)).toEqual([]);
  expect(filesUnder(nodeModules).filter((f) => f.endsWith(".node") || path.basename(f) === "binding.gyp")).toEqual([]);
});

test("an ESM and a CommonJS consumer type-check (strict) and round-trip objects byte for byte against a cluster", async () => {
  // The consumers' expected type errors make a type-check that let anything through fail too.
  expectOk(await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: consumer, timeoutMs: 60_000 }), "tsc of the consumers");
  const reg = await t.client.registerJob("sdk-package");
  const job = t.client.job(reg.token);
  const flavours = [["esm", "esm.mjs"], ["cjs", "cjs.cjs"]] as const;
  // Both at once, as two lambdas of one job would.
  const runs = await Promise.all(flavours.map(([flavour, file]) => {
    const env = { ...process.env, POCKET_NATS_URL: t.nats.url, POCKET_CREDS: reg.credentials!, POCKET_TOKEN: reg.token, POCKET_SDK_TEST_PREFIX: flavour };
    return run(process.execPath, [path.join(consumer, "out", file)], { cwd: consumer, env, timeoutMs: 30_000 });
  }));
  for (const [i, [flavour]] of flavours.entries()) {
    const ran = runs[i]!;
    expectOk(ran, `the ${flavour} consumer`);
    const result = JSON.parse(ran.stdout.trim().split("\n").pop()!) as { objects: Array<{ key: string; size: number; sha256: string }>; missing: string; dual: boolean };
    expect(result.objects.map((o) => o.size)).toEqual(sizes);
    expect(result.missing).toBe("NotFoundError");
    expect(result.dual).toBe(true);
    // What the consumer stored is what the repository's own client reads.
    for (const o of result.objects) expect(createHash("sha256").update(await job.get(o.key)).digest("hex")).toBe(o.sha256);
  }
  await t.client.deregisterJob(reg.token);
});
