import fs from "node:fs";
import path from "node:path";
import ts from "typescript";
import { projectRoot } from "../../lib/process";
import { sourceFiles } from "../harness/sources";

/*
 * No function is longer than `functionLinesMax` lines: a longer one does
 * several things and is split into named steps. Measured on the body, from
 * its first line to its last (blank and comment lines count), for function
 * declarations and expressions, methods, accessors, constructors and arrow
 * functions alike; a nested function counts in its own length and in its
 * parent's.
 */
const functionLinesMax = 70;

/** The source folders measured (not test/: a test file is a list of cases). */
const sourceDirs = ["lib", "schemas", "bus", "native", "actors", "client", "deploy", "cli", "bench", "examples"] as const;

/** One function's length: where it starts (1-based line of the function) and what it is called. */
export interface FunctionLength {
  readonly file: string;
  readonly line: number;
  readonly name: string;
  readonly lines: number;
}

type FunctionNode = ts.FunctionLikeDeclaration & { readonly body: ts.Node };

function isMeasured(node: ts.Node): node is FunctionNode {
  const functionLike = ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isArrowFunction(node)
    || ts.isMethodDeclaration(node) || ts.isConstructorDeclaration(node) || ts.isGetAccessorDeclaration(node) || ts.isSetAccessorDeclaration(node);
  return functionLike && node.body !== undefined;
}

/** A property, variable or member name as written, or undefined for a computed one. */
function nameText(name: ts.Node | undefined, sf: ts.SourceFile): string | undefined {
  if (name === undefined) return undefined;
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name) || ts.isStringLiteral(name) || ts.isNumericLiteral(name)) return name.text;
  return name.getText(sf);
}

/** What an anonymous function is bound to: the variable, property or parameter it initialises, or the call it is passed to. */
function boundName(node: ts.Node, sf: ts.SourceFile): string {
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) {
    return nameText(parent.name, sf) ?? "(anonymous)";
  }
  if (ts.isCallExpression(parent) || ts.isNewExpression(parent)) {
    return `(callback of ${parent.expression.getText(sf).slice(0, 40)})`;
  }
  return "(anonymous)";
}

/** The function's own name: `f`, `Class.method`, `Class.constructor`, or what an arrow function is bound to. */
function ownName(node: FunctionNode, sf: ts.SourceFile): string {
  const owner = ts.isClassLike(node.parent) ? `${node.parent.name?.text ?? "(class)"}.` : "";
  if (ts.isConstructorDeclaration(node)) return `${owner}constructor`;
  if (ts.isGetAccessorDeclaration(node)) return `${owner}get ${nameText(node.name, sf)}`;
  if (ts.isSetAccessorDeclaration(node)) return `${owner}set ${nameText(node.name, sf)}`;
  const named = nameText(node.name, sf);
  return named !== undefined ? `${owner}${named}` : boundName(node, sf);
}

/** Every function in a source text with its body's length in lines; nested functions are named `outer › inner`. */
export function functionLengths(file: string, source: string): FunctionLength[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: FunctionLength[] = [];
  const lineOf = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line + 1;
  const visit = (node: ts.Node, outer: string | undefined): void => {
    let inside = outer;
    if (isMeasured(node)) {
      const own = ownName(node, sf);
      inside = outer === undefined ? own : `${outer} › ${own}`;
      const lines = lineOf(node.body.end) - lineOf(node.body.getStart(sf)) + 1;
      found.push({ file, line: lineOf(node.getStart(sf)), name: inside, lines });
    }
    ts.forEachChild(node, (child) => visit(child, inside));
  };
  visit(sf, undefined);
  return found;
}

/** Functions over `max` lines in the project's source folders, longest first. */
export function longFunctions(root: string, max: number): FunctionLength[] {
  const found: FunctionLength[] = [];
  for (const dir of sourceDirs) {
    const abs = path.join(root, dir);
    if (!fs.existsSync(abs)) continue;
    for (const file of sourceFiles(abs)) {
      const lengths = functionLengths(path.relative(root, file), fs.readFileSync(file, "utf8"));
      found.push(...lengths.filter((f) => f.lines > max));
    }
  }
  return found.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}

/** `file:line name (N lines)`, as the failure lists it. */
export function describeLength(f: FunctionLength): string {
  return `${f.file}:${f.line} ${f.name} (${f.lines} lines)`;
}

test(`no function is longer than ${functionLinesMax} lines`, () => {
  const offenders = longFunctions(projectRoot(), functionLinesMax).map(describeLength);
  if (offenders.length > 0) {
    throw new Error(`${offenders.length} function(s) over ${functionLinesMax} lines; split each into named steps:\n  ${offenders.join("\n  ")}`);
  }
});

/** A source text with a function whose body spans `lines` lines (its braces included). */
function bodyOf(lines: number): string {
  return `{\n${Array.from({ length: lines - 2 }, (_, i) => `  step(${i});\n`).join("")}}`;
}

test("the measure catches a long function of every kind, and only those over the limit", () => {
  const long = bodyOf(functionLinesMax + 1);
  const fits = bodyOf(functionLinesMax);
  const source = [
    `export function tooLong(): void ${long}`,
    `function fitsExactly(): void ${fits}`,
    `class Shard {\n  constructor() ${long}\n  route(): void ${long}\n  get size(): number ${fits}\n}`,
    `const handler = async (): Promise<void> => ${long};`,
    `const table = { put: function () ${long} };`,
    `function outer(): void {\n  items.forEach(() => ${long});\n}`,
  ].join("\n");
  const over = functionLengths("mem.ts", source).filter((f) => f.lines > functionLinesMax);
  expect(over.map((f) => `${f.name} ${f.lines}`)).toEqual([
    `tooLong ${functionLinesMax + 1}`,
    `Shard.constructor ${functionLinesMax + 1}`,
    `Shard.route ${functionLinesMax + 1}`,
    `handler ${functionLinesMax + 1}`,
    `put ${functionLinesMax + 1}`,
    `outer ${functionLinesMax + 3}`,
    `outer › (callback of items.forEach) ${functionLinesMax + 1}`,
  ]);
  expect(describeLength(over[0]!)).toBe(`mem.ts:1 tooLong (${functionLinesMax + 1} lines)`);
  expect(over[1]!.line).toBe(functionLinesMax + functionLinesMax + 3);
});
