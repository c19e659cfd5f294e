import fs from "node:fs";
import path from "node:path";
import { pidRuns, projectRoot, spawnReady, stopChild, type ReadyProcess } from "../lib/process";

export type ActorRole = "controller" | "shard" | "node";
export type ActorProcess = ReadyProcess;
export { stopChild };

/** The built entry point every actor process runs. */
function actorMain(): string {
  return path.join(projectRoot(), "dist", "actors", "main.js");
}

/**
 * Starts one actor as its own Node process (`dist/actors/main.js <role>`),
 * stderr to `<logsDir>/<name>.log`, and waits for its ready line.
 * POCKET_ACTOR_NODE_ARGS passes flags to every actor process, e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof".
 */
export async function spawnActor(role: ActorRole, name: string, config: object, logsDir: string, readyTimeoutMs = 15_000): Promise<ActorProcess> {
  const main = actorMain();
  if (!fs.existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  const nodeArgs = (process.env["POCKET_ACTOR_NODE_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0);
  const logPath = path.join(logsDir, `${name}.log`);
  try {
    return await spawnReady(main, [role], { env: { POCKET_ACTOR_CONFIG: JSON.stringify(config) }, nodeArgs, logPath, readyTimeoutMs });
  } catch (e) {
    // An actor that fails to start says why on its last line of stderr (actors/main.ts): hand that on.
    const why = lastLine(logPath);
    if (why === undefined || !(e instanceof Error)) throw e;
    throw new Error(`${why} (${e.message})`, { cause: e });
  }
}

/** Bytes of a log's end read for its last line. */
const logTailBytes = 4096;

/** The last non-empty line of a file, from its last few KiB; undefined when there is none. */
function lastLine(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, "r");
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, logTailBytes));
    fs.readSync(fd, buf, 0, buf.byteLength, size - buf.byteLength);
    return buf.toString("utf8").split("\n").map((l) => l.trim()).filter((l) => l.length > 0).pop();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** True when `pid` is a live process running the actor entry point. */
export function isActorPid(pid: number): boolean {
  return pidRuns(pid, path.join("dist", "actors", "main.js"));
}
