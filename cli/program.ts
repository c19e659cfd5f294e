import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Command, CommanderError } from "commander";
import { isPocketError } from "../schemas/errors";
import { projectRoot } from "../lib/process";
import { clusterVerbs } from "./cluster-verbs";
import { eventVerbs } from "./event-verbs";
import { jobVerbs } from "./job-verbs";
import { objectVerbs } from "./object-verbs";
import { operateVerbs } from "./operate-verbs";
import { envHelp, envLines } from "./env-vars";
import { InterruptedError } from "./transfer";
import { UsageError, VerbGroup, type Flags, type Verb } from "./verb";

/** Exit codes: the verb did what it was asked; an operation failed (a typed error); the command line was wrong. */
export const ExitCode = { Ok: 0, Failed: 1, Usage: 2 } as const;

/**
 * Every verb of `pocket`, in the order help lists them within their groups.
 * Each is declared once (cli/*-verbs.ts) with its arguments, flags, the
 * environment it reads and examples.
 */
export const verbs: readonly Verb[] = [
  ...clusterVerbs,
  ...eventVerbs,
  ...operateVerbs,
  ...jobVerbs,
  ...objectVerbs,
];

/** Words of the parent verbs (`pocket job register`): what each one is for. */
const parents: Readonly<Record<string, string>> = {
  job: "job register NAME | job deregister JOB",
  node: "node retire NODE: drain a node and remove it once it holds no data",
  auth: "auth init DIR: create a cluster's bus identities",
  k8s: "k8s secrets: the Kubernetes Secrets of a cluster",
};

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot(), "package.json"), "utf8")) as { version?: string };
  return pkg.version ?? "unknown";
}

/** The text after a verb's flags in its help: the environment it reads and examples. */
function helpAfter(verb: Verb): string {
  const env = verb.env.length > 0 ? `\nEnvironment:\n${envLines(verb.env)}\n` : "";
  const examples = verb.examples.length > 0 ? `\nExamples:\n${verb.examples.map((e) => `  $ ${e}`).join("\n")}\n` : "";
  return `${env}${examples}`;
}

/** What follows a usage error: the verb's usage line and where its help is. */
function usageHint(cmd: Command, words: readonly string[]): string {
  const name = ["pocket", ...words].join(" ");
  return `Usage: ${name} ${cmd.usage()}\nRun \`pocket help ${words.join(" ")}\` for its flags, environment and an example.`;
}

/** The command for `words` under `root`, made (as a parent verb) where missing. */
function parentOf(root: Command, words: readonly string[]): Command {
  let at = root;
  for (const w of words) {
    const found = at.commands.find((c) => c.name() === w);
    at = found ?? at.command(w).description(parents[w] ?? w).helpGroup(VerbGroup.Cluster).helpCommand(false);
  }
  return at;
}

/** Adds one verb to the program: its arguments, flags, help and action. */
function addVerb(root: Command, verb: Verb): void {
  const parent = parentOf(root, verb.words.slice(0, -1));
  const cmd = parent.command(verb.words.at(-1)!).summary(verb.summary)
    .description(verb.details ? `${verb.summary}\n\n${verb.details}` : verb.summary);
  if (parent === root) cmd.helpGroup(verb.group);
  else parent.helpGroup(verb.group);
  for (const a of verb.args) cmd.argument(a.syntax, a.description);
  for (const o of verb.options) cmd.addOption(o);
  cmd.addHelpText("after", helpAfter(verb));
  cmd.showHelpAfterError(usageHint(cmd, verb.words));
  cmd.action(async (...params: unknown[]) => {
    const args = params.slice(0, verb.args.length) as Array<string | undefined>;
    try {
      await verb.run(args, cmd.opts<Flags>());
    } catch (e) {
      if (e instanceof UsageError) cmd.error(`error: ${e.message}`, { exitCode: ExitCode.Usage, code: "pocket.usage" });
      throw e;
    }
  });
}

/** `pocket help [VERB...]`: the program's help, a verb's, or the environment variables (`help env`). */
function addHelp(root: Command): void {
  root.command("help").argument("[verb...]", "a verb (put, job register, ...), or env").helpGroup("Help:")
    .summary("show a verb's help, or `help env` for every environment variable")
    .action((words: string[]) => {
      if (words.length === 0) return root.outputHelp();
      if (words.length === 1 && words[0] === "env") return void process.stdout.write(envHelp());
      let at: Command | undefined = root;
      for (const w of words) at = at?.commands.find((c) => c.name() === w);
      if (!at) throw new UsageError(`no verb ${JSON.stringify(words.join(" "))}: run \`pocket help\` for the list`);
      at.outputHelp();
    });
}

/** The `pocket` command: every verb with its own flags and help. */
export function buildProgram(): Command {
  const root = new Command("pocket")
    .description("pocket — elastic ephemeral storage for serverless analytics")
    .version(version(), "-V, --version", "print the version")
    .helpCommand(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError("Run `pocket help` for the verbs, `pocket help VERB` for one of them.")
    .addHelpText("after", "\nRun `pocket help VERB` (or `pocket VERB --help`) for a verb's arguments, flags, environment and examples;\n"
      + "`pocket help env` for every environment variable.\nExit codes: 0 ok, 1 the operation failed (`error <Code>: message`), 2 usage error.\n");
  for (const v of verbs) addVerb(root, v);
  addHelp(root);
  return root;
}

/** The exit code for what a verb threw, having said why on stderr. */
function failure(e: unknown): number {
  if (e instanceof CommanderError) return e.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (e instanceof UsageError) {
    process.stderr.write(`error: ${e.message}\n`);
    return ExitCode.Usage;
  }
  if (e instanceof InterruptedError) {
    process.stderr.write(`pocket: ${e.message}\n`);
    return 128 + (os.constants.signals[e.signal] ?? 0);
  }
  // The reader of standard output went away (`pocket get ... | head`): stop quietly, as a shell tool killed by SIGPIPE.
  if ((e as NodeJS.ErrnoException | undefined)?.code === "EPIPE") return 128 + os.constants.signals.SIGPIPE;
  if (isPocketError(e)) process.stderr.write(`error ${e.code}: ${e.message}\n`);
  else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
  return ExitCode.Failed;
}

/** Runs `pocket` with these arguments; resolves to its exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return ExitCode.Ok;
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return typeof process.exitCode === "number" ? process.exitCode : ExitCode.Ok;
  } catch (e) {
    return failure(e);
  }
}
