import { Option } from "commander";
import { formatBytes } from "../lib/units";
import { As, tokenFor, withClient } from "./connect";
import { getToFile, getToStdout, progressBytesMin, putFile } from "./transfer";
import { connectionOptions, jsonOption, output, tokenOption, transportOption, VerbGroup, type Verb, type VerbArgument } from "./verb";
import type { EnvName } from "./env-vars";

const jobArg: VerbArgument = { syntax: "<job>", description: "the job id (POCKET_JOB from `pocket job register`); must be the token's job" };
/** What every object verb reads from the environment. */
const objectEnv: readonly EnvName[] = ["POCKET_NATS_URL", "POCKET_TOKEN", "POCKET_CREDS", "POCKET_NATS_CREDS", "POCKET_TLS_CA"];

/** The flags every object verb takes: connection, token, transport. */
function objectOptions(...more: Option[]): Option[] {
  return [tokenOption(), ...connectionOptions("POCKET_CREDS, else POCKET_NATS_CREDS"), transportOption(), ...more];
}

const progressMiB = progressBytesMin / 2 ** 20;
const progressOptions = (): Option[] => [
  new Option("--progress", `show progress on stderr even when it is not a terminal, or for less than ${progressMiB} MiB`),
  new Option("--no-progress", "never show progress"),
];

export const put: Verb = {
  words: ["put"],
  group: VerbGroup.Objects,
  summary: "store a file (or standard input) as KEY",
  details: "Streams the file: memory stays bounded whatever its size. Overwrites KEY unless --create-only.\n"
    + `On a terminal, a transfer of ${progressMiB} MiB or more shows a progress bar on stderr (bytes, rate, ETA).`,
  args: [jobArg, { syntax: "<key>", description: "the object's path in the job's namespace, e.g. data/in.bin" }, { syntax: "<file>", description: "the file to store, or - for standard input" }],
  options: objectOptions(new Option("--create-only", "fail with AlreadyExists instead of overwriting"), ...progressOptions(), jsonOption()),
  env: objectEnv,
  examples: ["pocket put $POCKET_JOB data/in.bin ./in.bin", "tar c dir | pocket put $POCKET_JOB backup.tar -"],
  run: ([job, key, file], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const r = await putFile(c.job(token), key!, file!, { progress: flags.progress, createOnly: flags.createOnly });
      output(flags, r, () => `${key}: ${formatBytes(r.size)}, version ${r.version}\n`);
    });
  },
};

export const get: Verb = {
  words: ["get"],
  group: VerbGroup.Objects,
  summary: "write KEY to a file (or standard output)",
  details: "Writes to a temporary file beside FILE and renames it into place once complete: a failed get leaves no file,\n"
    + "and an existing FILE is untouched. A FILE that is a directory gets KEY's last segment as its name.\n"
    + "To standard output (no FILE, or -): a failure exits non-zero; if standard output is a regular file it is truncated back.\n"
    + `On a terminal, a transfer of ${progressMiB} MiB or more shows a progress bar on stderr (bytes, rate, ETA).`,
  args: [jobArg, { syntax: "<key>", description: "the object's path" }, { syntax: "[file]", description: "where to write it; - or none for standard output" }],
  options: objectOptions(...progressOptions()),
  env: objectEnv,
  examples: ["pocket get $POCKET_JOB data/in.bin ./out.bin", "pocket get $POCKET_JOB data/in.bin | sha256sum"],
  run: ([job, key, file], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const options = { progress: flags.progress };
      if (file === undefined || file === "-") await getToStdout(c.job(token), key!, options);
      else await getToFile(c.job(token), key!, file, options);
    });
  },
};

export const ls: Verb = {
  words: ["ls"],
  group: VerbGroup.Objects,
  summary: "list a directory",
  args: [jobArg, { syntax: "[dir]", description: "the directory (default: the job's root)" }],
  options: objectOptions(jsonOption()),
  env: objectEnv,
  examples: ["pocket ls $POCKET_JOB data"],
  run: ([job, dir], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const entries: Array<{ name: string; type: string; size: number }> = [];
      for await (const e of c.job(token).listAll(dir ?? "")) entries.push(e);
      output(flags, entries, () => entries.map((e) => (e.type === "directory" ? `${e.name}/\n` : `${e.name}\t${e.size}\n`)).join(""));
    });
  },
};

export const stat: Verb = {
  words: ["stat"],
  group: VerbGroup.Objects,
  summary: "an object's size and version, or a directory's entries",
  args: [jobArg, { syntax: "<key>", description: "the object's or directory's path" }],
  options: objectOptions(jsonOption()),
  env: objectEnv,
  examples: ["pocket stat $POCKET_JOB data/in.bin --json"],
  run: ([job, key], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const s = await c.job(token).stat(key!);
      output(flags, s, () => `${s.path}: ${s.type}, ${s.type === "object" ? `${s.size} bytes, version ${s.version}` : `${s.children} entries`}\n`);
    });
  },
};

export const countVerb: Verb = {
  words: ["count"],
  group: VerbGroup.Objects,
  summary: "objects, directories and bytes under a directory",
  args: [jobArg, { syntax: "[dir]", description: "the directory (default: the job's root)" }],
  options: objectOptions(new Option("-r, --recursive", "count everything below, not only the directory's own entries"), jsonOption()),
  env: objectEnv,
  examples: ["pocket count $POCKET_JOB --recursive"],
  run: ([job, dir], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const n = await c.job(token).count(dir ?? "", { recursive: flags.recursive });
      output(flags, n, () => `${n.objects} objects, ${n.directories} directories, ${formatBytes(n.bytes)}\n`);
    });
  },
};

export const mkdir: Verb = {
  words: ["mkdir"],
  group: VerbGroup.Objects,
  summary: "make a directory",
  args: [jobArg, { syntax: "<dir>", description: "the directory's path" }],
  options: objectOptions(),
  env: objectEnv,
  examples: ["pocket mkdir $POCKET_JOB shuffle"],
  run: ([job, dir], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, (c) => c.job(token).mkdir(dir!));
  },
};

export const rm: Verb = {
  words: ["rm"],
  group: VerbGroup.Objects,
  summary: "delete an object, or a directory with --recursive",
  args: [jobArg, { syntax: "<key>", description: "the object's or directory's path" }],
  options: objectOptions(new Option("-r, --recursive", "delete a directory and everything in it"), jsonOption()),
  env: objectEnv,
  examples: ["pocket rm $POCKET_JOB data --recursive"],
  run: ([job, key], flags) => {
    const token = tokenFor(flags, job);
    return withClient(flags, As.Lambda, async (c) => {
      const r = await c.job(token).delete(key!, { recursive: flags.recursive });
      output(flags, r, () => `removed ${r.objects} objects, ${formatBytes(r.bytes)}\n`);
    });
  },
};

/** The object verbs, in the order help lists them. */
export const objectVerbs: readonly Verb[] = [put, get, ls, stat, countVerb, mkdir, rm];
