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
  return spawnReady(main, [role], {
    env: { POCKET_ACTOR_CONFIG: JSON.stringify(config) }, nodeArgs, logPath: path.join(logsDir, `${name}.log`), readyTimeoutMs,
  });
}

/** True when `pid` is a live process running the actor entry point. */
export function isActorPid(pid: number): boolean {
  return pidRuns(pid, path.join("dist", "actors", "main.js"));
}
