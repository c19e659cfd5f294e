import fs from "node:fs";
import path from "node:path";
import { projectRoot } from "../../lib/process";
import { sourceFiles } from "../harness/sources";

/*
 * Imports point down the layers (README, "Layers"): a module may import its
 * own folder or a folder of a lower layer, never one beside it or above it.
 * Type-only imports count too: they couple the layers all the same.
 */
const layerOf: Record<string, number> = {
  lib: 0,
  schemas: 1,
  bus: 2,
  native: 2,
  actors: 3,
  client: 3,
  deploy: 4,
  cli: 5,
  bench: 5,
  examples: 5,
  test: 6,
};

/** Inside actors/: the shared floor; the shard and the node; orchestrators (which launch nodes); the controller (which drives them); the entry point. */
const actorLayerOf: Record<string, number> = {
  runtime: 0,
  "actor-process": 0,
  storage: 1,
  metadata: 1,
  orchestrator: 2,
  controller: 3,
  main: 4,
};

interface Violation { readonly from: string; readonly to: string; readonly why: string }

const importPattern = /(?:^|[\s;])(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|(?:import|require)\(\s*["']([^"']+)["']\s*\)/gm;

/** Relative import specifiers of a source file. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(importPattern)) {
    const spec = m[1] ?? m[2];
    if (spec !== undefined && spec.startsWith(".")) out.push(spec);
  }
  return out;
}

/** Why importing `to` from `from` runs back up, or undefined when it points down. Both are paths from the project root. */
export function violation(from: string, to: string): string | undefined {
  const [fromTop, ...fromRest] = from.split("/");
  const [toTop, ...toRest] = to.split("/");
  const a = layerOf[fromTop!];
  const b = layerOf[toTop!];
  if (a === undefined || b === undefined) return undefined;
  if (fromTop === toTop) {
    if (fromTop !== "actors") return undefined;
    const f = fromRest[0]!.replace(/\.ts$/, "");
    const t = toRest[0]!.replace(/\.ts$/, "");
    if (f === t || (actorLayerOf[t] ?? 1) < (actorLayerOf[f] ?? 1)) return undefined;
    return `actors/${f} may import only actors/runtime and actors below it, not actors/${t}`;
  }
  if (b < a) return undefined;
  return `${fromTop}/ (layer ${a}) may not import ${toTop}/ (layer ${b})`;
}

function scan(root: string): Violation[] {
  const found: Violation[] = [];
  for (const top of Object.keys(layerOf)) {
    const dir = path.join(root, top);
    if (!fs.existsSync(dir)) continue;
    for (const file of sourceFiles(dir)) {
      const from = path.relative(root, file);
      for (const spec of importsOf(fs.readFileSync(file, "utf8"))) {
        const to = path.relative(root, path.resolve(path.dirname(file), spec));
        const why = violation(from, to);
        if (why) found.push({ from, to, why });
      }
    }
  }
  return found;
}

test("no import runs back up the layers", () => {
  expect(scan(projectRoot())).toEqual([]);
});

test("lib/ imports only Node's own modules", () => {
  const root = projectRoot();
  const bad: string[] = [];
  for (const file of sourceFiles(path.join(root, "lib"))) {
    for (const m of fs.readFileSync(file, "utf8").matchAll(importPattern)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.startsWith(".") && !spec.startsWith("node:")) bad.push(`${path.relative(root, file)} → ${spec}`);
    }
  }
  expect(bad).toEqual([]);
});

test("the check catches an import that runs back up", () => {
  expect(importsOf(`import type { Logger } from "../actors/runtime/log";\nimport { x } from "./y";`)).toEqual(["../actors/runtime/log", "./y"]);
  expect(violation("bus/subscribe.ts", "actors/runtime/log")).toMatch(/bus\/ \(layer 2\) may not import actors\//);
  expect(violation("client/pocket.ts", "actors/runtime/concurrency")).toBeDefined();
  expect(violation("native/index.ts", "deploy/actor-process")).toBeDefined();
  expect(violation("examples/sort/main.ts", "cli/progress")).toBeDefined();
  expect(violation("actors/metadata/shard.ts", "actors/controller/core")).toBeDefined();
  expect(violation("actors/runtime/config.ts", "actors/main")).toBeDefined();
  expect(violation("actors/controller/controller.ts", "actors/orchestrator/index")).toBeUndefined();
  expect(violation("bus/router.ts", "schemas/errors")).toBeUndefined();
  expect(violation("client/pocket.ts", "bus/tcp-client")).toBeUndefined();
});
