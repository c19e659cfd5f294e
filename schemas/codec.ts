import { assert } from "../lib/assert";
import { InvalidArgumentError } from "./errors";
import { NodeOps, ShardOps } from "./operations";

/*
 * Binary layouts for the hot operations' request and reply meta (the JSON
 * object of the body), used instead of JSON by both transports when both
 * ends know them; every other operation, and any peer that sends JSON, keeps
 * JSON. A binary meta is told from JSON by its first byte (JSON text never
 * starts with 0x00):
 *
 *   u8  0x00          marker
 *   u8  version       1
 *   u16 present       bit i set when field i is present (all fields of a layout, in order)
 *   …   fields        each present field in layout order
 *
 * All integers little-endian. Field types:
 *   str   u16 byte length, then UTF-8 bytes
 *   u32   unsigned 32-bit integer (CRC-32s, versions)
 *   u53   IEEE 754 double holding an integer 0 ..= 2^53 (sizes, offsets)
 *   bool  u8, 0 or 1
 *   refs  u16 count, then each extent reference in the `ExtentRef` layout
 * A decoded meta is then checked against the operation's schema exactly as a
 * JSON one is: the layouts carry the same fields, not weaker rules.
 */

export const BinaryMeta = { marker: 0x00, version: 1 } as const;

type FieldType = "str" | "u32" | "u53" | "bool" | "refs";
type Field = readonly [name: string, type: FieldType];
export type Layout = readonly Field[];

/** An extent reference (read and write layouts). */
export const ExtentRefLayout: Layout = [["nodeId", "str"], ["addr", "str"], ["key", "str"], ["extentId", "str"], ["length", "u53"], ["crc", "u32"], ["grant", "str"]];

/** The operations with binary layouts, by name: request and reply field lists. */
export const BinaryLayouts: Readonly<Record<string, { readonly request: Layout; readonly reply: Layout }>> = {
  [ShardOps.objectGet.name]: {
    request: [["token", "str"], ["path", "str"], ["offset", "u53"], ["length", "u53"]],
    reply: [["path", "str"], ["size", "u53"], ["version", "u53"], ["inline", "bool"], ["extents", "refs"], ["crc", "u32"], ["prefixCrc", "u32"], ["suffixCrc", "u32"]],
  },
  [ShardOps.objectPut.name]: {
    request: [["token", "str"], ["path", "str"], ["createOnly", "bool"], ["crc", "u32"]],
    reply: [["path", "str"], ["version", "u53"], ["size", "u53"]],
  },
  [ShardOps.objectLookup.name]: {
    request: [["token", "str"], ["path", "str"]],
    reply: [["path", "str"], ["size", "u53"], ["version", "u53"], ["extents", "refs"]],
  },
  [NodeOps.extentRead.name]: {
    request: [["token", "str"], ["extentId", "str"], ["offset", "u53"], ["length", "u53"]],
    reply: [["length", "u53"], ["prefixCrc", "u32"], ["suffixCrc", "u32"]],
  },
  [NodeOps.extentWrite.name]: {
    request: [["token", "str"], ["extentId", "str"], ["grant", "str"], ["crc", "u32"]],
    reply: [["length", "u53"], ["crc", "u32"], ["receipt", "str"]],
  },
};

/** True when `meta` is in a binary layout (not JSON). */
export function isBinaryMeta(meta: Uint8Array): boolean {
  return meta.byteLength > 0 && meta[0] === BinaryMeta.marker;
}

/** Encodes `value`'s fields of `layout`; fields it does not name are not sent (callers send only what the layout holds). */
export function encodeBinary(layout: Layout, value: Record<string, unknown>): Buffer {
  const w = new Writer();
  w.u8(BinaryMeta.marker);
  w.u8(BinaryMeta.version);
  writeFields(w, layout, value);
  return w.finish();
}

/** Decodes a binary meta; InvalidArgument when it is not exactly a value of `layout`. */
export function decodeBinary(layout: Layout, meta: Uint8Array): Record<string, unknown> {
  const r = new Reader(meta);
  if (r.u8() !== BinaryMeta.marker) throw new InvalidArgumentError("not a binary meta");
  const version = r.u8();
  if (version !== BinaryMeta.version) throw new InvalidArgumentError(`binary meta version ${version} is not known (this server speaks ${BinaryMeta.version})`);
  const value = readFields(r, layout);
  if (!r.done) throw new InvalidArgumentError(`${meta.byteLength - r.at} bytes after the binary meta's last field`);
  return value;
}

/** Each layout's field names, made once (a check per message is then a set lookup per field). */
const layoutNames = new WeakMap<Layout, ReadonlySet<string>>();

/** True when every field of `value` has a place in `layout` (else it must travel as JSON). */
export function fitsLayout(layout: Layout, value: Record<string, unknown>): boolean {
  let names = layoutNames.get(layout);
  if (names === undefined) {
    names = new Set(layout.map(([name]) => name));
    layoutNames.set(layout, names);
  }
  for (const k in value) if (value[k] !== undefined && !names.has(k)) return false;
  return true;
}

/** A layout's encoder and decoder, each made once as straight-line code with the field names written in. */
interface LayoutCode {
  readonly write: (w: Writer, value: Record<string, unknown>) => void;
  readonly read: (r: Reader) => Record<string, unknown>;
}

const layoutCode = new WeakMap<Layout, LayoutCode>();

function codeFor(layout: Layout): LayoutCode {
  let code = layoutCode.get(layout);
  if (code === undefined) {
    code = compileLayout(layout);
    layoutCode.set(layout, code);
  }
  return code;
}

function writeFields(w: Writer, layout: Layout, value: Record<string, unknown>): void {
  codeFor(layout).write(w, value);
}

function readFields(r: Reader, layout: Layout): Record<string, unknown> {
  return codeFor(layout).read(r);
}

const fieldTypes: ReadonlySet<string> = new Set<FieldType>(["str", "u32", "u53", "bool", "refs"]);

/**
 * Compiles a layout (the constant tables above, never input) into two
 * functions with each field's name written in: V8 then reads and builds the
 * values with one object shape per layout instead of looking each field up
 * by a key held in a variable (a third of a small meta's decoding time).
 * They do what a loop over the layout does, field by field: the presence
 * bits, then each present field in order.
 */
function compileLayout(layout: Layout): LayoutCode {
  assert(layout.length <= 16, "a layout has at most 16 fields (its presence bits are a u16)", () => ({ fields: layout.length }));
  for (const [name, type] of layout) {
    assert(/^[A-Za-z][A-Za-z0-9]*$/.test(name) && fieldTypes.has(type), "a layout field is a plain name of a known type", () => ({ name, type }));
  }
  const key = (name: string): string => JSON.stringify(name);
  const write: string[] = [];
  layout.forEach(([name], i) => write.push(`const f${i} = value[${key(name)}];`));
  write.push("let present = 0;");
  layout.forEach((_, i) => write.push(`if (f${i} !== undefined) present |= ${1 << i};`));
  write.push("w.u16(present);");
  layout.forEach(([, type], i) => {
    const put = type === "str" ? `w.str(String(f${i}))` : type === "bool" ? `w.u8(f${i} ? 1 : 0)` : type === "refs" ? `writeRefs(w, f${i})` : `w.${type}(f${i})`;
    write.push(`if (f${i} !== undefined) ${put};`);
  });
  const read: string[] = ["const present = r.u16();", `if (present >>> ${layout.length} !== 0) throw unknownFields();`, "const out = {};"];
  layout.forEach(([name, type], i) => read.push(`if ((present & ${1 << i}) !== 0) out[${key(name)}] = ${type === "refs" ? "readRefs(r)" : `r.${type}()`};`));
  read.push("return out;");
  // The code is made from the constant layouts above, their names and types checked just now.
  const makeWrite = new Function("writeRefs", `return function write(w, value) {\n${write.join("\n")}\n};`) as (refsWriter: RefsWriter) => LayoutCode["write"];
  const makeRead = new Function("readRefs", "unknownFields", `return function read(r) {\n${read.join("\n")}\n};`) as (refsReader: RefsReader, unknown: () => Error) => LayoutCode["read"];
  return { write: makeWrite(writeRefs), read: makeRead(readRefs, unknownFields) };
}

type RefsWriter = (w: Writer, refs: ReadonlyArray<Record<string, unknown>>) => void;
type RefsReader = (r: Reader) => Array<Record<string, unknown>>;

function writeRefs(w: Writer, refs: ReadonlyArray<Record<string, unknown>>): void {
  w.u16(refs.length);
  const code = codeFor(ExtentRefLayout);
  for (const ref of refs) code.write(w, ref);
}

function readRefs(r: Reader): Array<Record<string, unknown>> {
  const n = r.u16();
  const code = codeFor(ExtentRefLayout);
  const refs: Array<Record<string, unknown>> = [];
  for (let j = 0; j < n; j++) refs.push(code.read(r));
  return refs;
}

function unknownFields(): Error {
  return new InvalidArgumentError("binary meta names fields its layout does not have");
}

/** Strings up to this many characters are tried as ASCII in JavaScript before Buffer's UTF-8 code. */
const shortStringMax = 96;

/** Appends little-endian fields to a growing buffer. */
class Writer {
  #buf = Buffer.allocUnsafe(256);
  #at = 0;

  #room(n: number): void {
    if (this.#at + n <= this.#buf.byteLength) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.#buf.byteLength * 2, this.#at + n));
    this.#buf.copy(bigger, 0, 0, this.#at);
    this.#buf = bigger;
  }

  u8(v: number): void { this.#room(1); this.#buf[this.#at++] = v; }
  u16(v: number): void { this.#room(2); this.#buf.writeUInt16LE(v, this.#at); this.#at += 2; }
  u32(v: number): void { this.#room(4); this.#buf.writeUInt32LE(v >>> 0, this.#at); this.#at += 4; }
  u53(v: number): void { this.#room(8); this.#buf.writeDoubleLE(v, this.#at); this.#at += 8; }

  str(s: string): void {
    // Short ASCII (paths, ids, tokens): written here, byte by byte; a call into C++ costs more than the loop.
    if (s.length <= shortStringMax) {
      this.#room(2 + s.length);
      const buf = this.#buf;
      const start = this.#at + 2;
      let i = 0;
      for (; i < s.length; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i] = c;
      }
      if (i === s.length) {
        buf.writeUInt16LE(i, this.#at);
        this.#at = start + i;
        return;
      }
    }
    const n = Buffer.byteLength(s, "utf8");
    if (n > 0xffff) throw new InvalidArgumentError(`a string field of ${n} bytes does not fit a binary meta`);
    this.u16(n);
    this.#room(n);
    this.#buf.write(s, this.#at, "utf8");
    this.#at += n;
  }

  finish(): Buffer {
    return this.#buf.subarray(0, this.#at);
  }
}

/** Reads little-endian fields, refusing to read past the end. */
class Reader {
  readonly #buf: Buffer;
  at = 0;

  constructor(bytes: Uint8Array) {
    this.#buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean { return this.at === this.#buf.byteLength; }

  #need(n: number): void {
    if (this.at + n > this.#buf.byteLength) throw new InvalidArgumentError("binary meta ends inside a field");
  }

  u8(): number { this.#need(1); return this.#buf[this.at++]!; }
  u16(): number { this.#need(2); const v = this.#buf.readUInt16LE(this.at); this.at += 2; return v; }
  u32(): number { this.#need(4); const v = this.#buf.readUInt32LE(this.at); this.at += 4; return v; }

  u53(): number {
    this.#need(8);
    const v = this.#buf.readDoubleLE(this.at);
    this.at += 8;
    if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError("binary meta holds a size that is not a whole number of bytes");
    return v;
  }

  bool(): boolean {
    const v = this.u8();
    if (v > 1) throw new InvalidArgumentError("binary meta holds a boolean other than 0 or 1");
    return v === 1;
  }

  str(): string {
    const n = this.u16();
    this.#need(n);
    const buf = this.#buf;
    const start = this.at;
    this.at += n;
    return buf.toString("utf8", start, start + n);
  }
}
