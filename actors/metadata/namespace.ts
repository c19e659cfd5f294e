import { AlreadyExistsError, CapacityExceededError, InvalidArgumentError, NotEmptyError, NotFoundError } from "../../schemas/errors";
import { WireLimits } from "../../schemas/operations";
import { assert } from "../../lib/assert";

/** Where one piece of an object lives. */
export interface Extent {
  readonly nodeId: string;
  readonly extentId: string;
  readonly length: number;
  /** CRC-32 of the extent's bytes, as committed: every read of the extent is checked against it. */
  readonly crc: number;
}

export interface ObjectEntry {
  readonly kind: "object";
  readonly size: number;
  readonly version: number;
  readonly extents: readonly Extent[];
  /** A small object's bytes, kept in the shard instead of on storage nodes. */
  readonly inline?: Buffer;
  /** CRC-32 of an inline object's bytes, as committed. */
  readonly inlineCrc?: number;
  readonly modifiedAtMs: number;
}

export interface DirEntry {
  readonly kind: "dir";
  readonly children: Map<string, Entry>;
  modifiedAtMs: number;
}

export type Entry = ObjectEntry | DirEntry;

/**
 * Splits a job-relative path into segments. `""` and `"/"` are the root.
 * Rejects empty, `.` and `..` segments, NUL and over-long names.
 */
export function parsePath(path: string): string[] {
  // A UTF-16 unit is at most 3 UTF-8 bytes: short strings need no byte count (the common case, on every request).
  if (path.length * 3 > WireLimits.pathBytesMax && Buffer.byteLength(path, "utf8") > WireLimits.pathBytesMax) {
    throw new InvalidArgumentError(`path longer than ${WireLimits.pathBytesMax} bytes`);
  }
  let from = 0;
  let to = path.length;
  while (from < to && path.charCodeAt(from) === 47) from++;
  while (to > from && path.charCodeAt(to - 1) === 47) to--;
  if (from === to) return [];
  const parts = (from === 0 && to === path.length ? path : path.slice(from, to)).split("/");
  for (const p of parts) {
    if (p === "" || p === "." || p === "..") throw new InvalidArgumentError(`bad path ${JSON.stringify(path)}: empty, "." or ".." segment`);
    if (p.includes("\0")) throw new InvalidArgumentError("path contains NUL");
    if (p.length * 3 > WireLimits.pathSegmentBytesMax && Buffer.byteLength(p, "utf8") > WireLimits.pathSegmentBytesMax) {
      throw new InvalidArgumentError(`path segment longer than ${WireLimits.pathSegmentBytesMax} bytes`);
    }
  }
  return parts;
}

export interface Totals {
  objects: number;
  directories: number;
  bytes: number;
}

export interface DeleteResult {
  readonly totals: Totals;
  /** Extents to free on storage nodes. */
  readonly extents: Extent[];
  /** Bytes of inline objects dropped. */
  readonly inlineBytes: number;
}

/**
 * One job's namespace: a tree of directories and objects. Pure data, no I/O:
 * operations that drop objects return their extents for the caller to free.
 */
export class Namespace {
  readonly root: DirEntry;
  #objects = 0;
  #directories = 0;
  #bytes = 0;

  /** `entriesMax` bounds objects plus directories: empty objects and directories cost the shard memory too. */
  constructor(private readonly now: () => number, private readonly entriesMax = Number.MAX_SAFE_INTEGER) {
    this.root = { kind: "dir", children: new Map(), modifiedAtMs: now() };
  }

  get objects(): number { return this.#objects; }
  get bytes(): number { return this.#bytes; }

  /** The entry at `parts`, or undefined. Throws InvalidArgument if a parent is an object. */
  find(parts: readonly string[]): Entry | undefined {
    let cur: Entry = this.root;
    for (const p of parts) {
      if (cur.kind !== "dir") throw new InvalidArgumentError(`a parent of ${parts.join("/")} is an object`);
      const next = cur.children.get(p);
      if (!next) return undefined;
      cur = next;
    }
    return cur;
  }

  getObject(parts: readonly string[]): ObjectEntry {
    const e = this.find(parts);
    if (!e) throw new NotFoundError(`${parts.join("/") || "/"} not found`);
    if (e.kind !== "object") throw new InvalidArgumentError(`${parts.join("/") || "/"} is a directory`);
    return e;
  }

  getDir(parts: readonly string[]): DirEntry {
    const e = this.find(parts);
    if (!e) throw new NotFoundError(`${parts.join("/") || "/"} not found`);
    if (e.kind !== "dir") throw new InvalidArgumentError(`${parts.join("/")} is an object`);
    return e;
  }

  /** Checks that an object could be put at `parts` (no directory there, no object among its parents). */
  checkPutTarget(parts: readonly string[], createOnly: boolean): void {
    if (parts.length === 0) throw new InvalidArgumentError("an object needs a name");
    const e = this.find(parts);
    if (e?.kind === "dir") throw new InvalidArgumentError(`${parts.join("/")} is a directory`);
    if (e && createOnly) throw new AlreadyExistsError(`${parts.join("/")} exists`);
  }

  /** Creates a directory and missing parents. Throws AlreadyExists if it exists, InvalidArgument if an object is in the way. */
  mkdir(parts: readonly string[]): DirEntry {
    if (parts.length === 0) throw new AlreadyExistsError("/ exists");
    const e = this.find(parts);
    if (e) throw e.kind === "dir" ? new AlreadyExistsError(`${parts.join("/")} exists`) : new InvalidArgumentError(`${parts.join("/")} is an object`);
    return this.#ensureDir(parts);
  }

  /**
   * Puts an object, replacing an earlier one atomically. Returns the new entry
   * and the replaced one's extents (to free).
   */
  put(
    parts: readonly string[], size: number, extents: readonly Extent[], createOnly: boolean,
    inline?: { readonly bytes: Buffer; readonly crc: number },
  ): { entry: ObjectEntry; replaced: readonly Extent[]; replacedInlineBytes: number } {
    this.checkPutTarget(parts, createOnly);
    const dir = this.#ensureDir(parts.slice(0, -1));
    const name = parts[parts.length - 1]!;
    const old = dir.children.get(name) as ObjectEntry | undefined;
    if (!old) this.#checkRoom(1);
    const entry: ObjectEntry = {
      kind: "object", size, version: (old?.version ?? 0) + 1, extents, modifiedAtMs: this.now(),
      ...(inline ? { inline: inline.bytes, inlineCrc: inline.crc } : {}),
    };
    dir.children.set(name, entry);
    dir.modifiedAtMs = entry.modifiedAtMs;
    if (old) {
      this.#bytes -= old.size;
    } else {
      this.#objects++;
    }
    this.#bytes += size;
    this.#checkCounters();
    return { entry, replaced: old?.extents ?? [], replacedInlineBytes: old?.inline?.byteLength ?? 0 };
  }

  /** Deletes an object or a directory; returns what was removed and the extents to free. */
  delete(parts: readonly string[], recursive: boolean): DeleteResult {
    const e = this.find(parts);
    if (!e) throw new NotFoundError(`${parts.join("/") || "/"} not found`);
    if (e.kind === "dir" && e.children.size > 0 && !recursive) throw new NotEmptyError(`${parts.join("/") || "/"} is not empty`);
    const extents: Extent[] = [];
    const totals = collect(e, extents);
    const inlineBytes = totals.inlineBytes;
    if (parts.length === 0) {
      this.root.children.clear();
      totals.directories = Math.max(0, totals.directories - 1); // the root itself stays
    } else {
      const parent = this.find(parts.slice(0, -1)) as DirEntry;
      parent.children.delete(parts[parts.length - 1]!);
      parent.modifiedAtMs = this.now();
    }
    this.#objects -= totals.objects;
    this.#directories -= totals.directories;
    this.#bytes -= totals.bytes;
    this.#checkCounters();
    return { totals: { objects: totals.objects, directories: totals.directories, bytes: totals.bytes }, extents, inlineBytes };
  }

  /** Counts a directory's entries: its direct children, or everything below with `recursive`. */
  count(parts: readonly string[], recursive: boolean): Totals {
    const dir = this.getDir(parts);
    if (recursive) {
      const t = collect(dir, undefined);
      return { objects: t.objects, directories: t.directories - 1, bytes: t.bytes };
    }
    const t: Totals = { objects: 0, directories: 0, bytes: 0 };
    for (const c of dir.children.values()) {
      if (c.kind === "dir") t.directories++;
      else {
        t.objects++;
        t.bytes += c.size;
      }
    }
    return t;
  }

  /** Objects with an extent matching `test`, with their paths. */
  objectsWith(test: (e: Extent) => boolean): Array<{ parts: string[]; entry: ObjectEntry }> {
    const out: Array<{ parts: string[]; entry: ObjectEntry }> = [];
    const stack: Array<{ parts: string[]; dir: DirEntry }> = [{ parts: [], dir: this.root }];
    while (stack.length > 0) {
      const { parts, dir } = stack.pop()!;
      for (const [name, e] of dir.children) {
        if (e.kind === "dir") stack.push({ parts: [...parts, name], dir: e });
        else if (e.extents.some(test)) out.push({ parts: [...parts, name], entry: e });
      }
    }
    return out;
  }

  /**
   * Swaps one extent of an object for a copy with the same bytes (the version
   * stays: the content is unchanged). False when the object no longer has it.
   */
  replaceExtent(parts: readonly string[], extentId: string, copy: Extent): boolean {
    const e = this.find(parts);
    if (!e || e.kind !== "object") return false;
    const i = e.extents.findIndex((x) => x.extentId === extentId);
    if (i < 0 || e.extents[i]!.length !== copy.length || e.extents[i]!.crc !== copy.crc) return false;
    const extents = e.extents.slice();
    extents[i] = copy;
    const dir = this.find(parts.slice(0, -1)) as DirEntry;
    dir.children.set(parts[parts.length - 1]!, { ...e, extents });
    return true;
  }

  /**
   * Walks the whole tree and checks it against the counters: objects,
   * directories and bytes agree, every object's extents add up to its size
   * (or it is inline, with its bytes), and no extent id appears twice.
   * Returns the totals found. O(entries): for tests and the simulation.
   */
  checkInvariants(): Totals & { inlineBytes: number } {
    const ids = new Set<string>();
    const stack: Entry[] = [this.root];
    const found = { objects: 0, directories: -1, bytes: 0, inlineBytes: 0 };
    while (stack.length > 0) {
      const e = stack.pop()!;
      if (e.kind === "dir") {
        found.directories++;
        for (const c of e.children.values()) stack.push(c);
        continue;
      }
      found.objects++;
      found.bytes += e.size;
      if (e.inline) {
        found.inlineBytes += e.inline.byteLength;
        assert(e.inline.byteLength === e.size && e.extents.length === 0, "inline object's size disagrees with its bytes", () => ({ size: e.size }));
        continue;
      }
      let sum = 0;
      for (const x of e.extents) {
        assert(!ids.has(x.extentId), "extent id used twice", () => ({ extentId: x.extentId }));
        ids.add(x.extentId);
        sum += x.length;
      }
      assert(sum === e.size, "object's extents do not add up to its size", () => ({ size: e.size, extents: sum }));
    }
    assert(found.objects === this.#objects && found.directories === this.#directories && found.bytes === this.#bytes,
      "namespace counters disagree with its tree", () => ({ counted: { objects: this.#objects, directories: this.#directories, bytes: this.#bytes }, found }));
    return found;
  }

  /** Every extent of the namespace (to free it whole). */
  allExtents(): Extent[] {
    const out: Extent[] = [];
    collect(this.root, out);
    return out;
  }

  #checkCounters(): void {
    assert(this.#objects >= 0 && this.#directories >= 0 && this.#bytes >= 0 && this.#objects + this.#directories <= this.entriesMax,
      "namespace counters out of range", () => ({ objects: this.#objects, directories: this.#directories, bytes: this.#bytes }));
  }

  #checkRoom(entries: number): void {
    if (this.#objects + this.#directories + entries > this.entriesMax) {
      throw new CapacityExceededError(`the namespace holds ${this.entriesMax} objects and directories at most`);
    }
  }

  #ensureDir(parts: readonly string[]): DirEntry {
    let cur = this.root;
    for (const p of parts) {
      let next = cur.children.get(p);
      if (!next) {
        this.#checkRoom(1);
        this.#directories++;
        next = { kind: "dir", children: new Map(), modifiedAtMs: this.now() };
        cur.children.set(p, next);
        cur.modifiedAtMs = next.modifiedAtMs;
      }
      if (next.kind !== "dir") throw new InvalidArgumentError(`${p} in ${parts.join("/")} is an object`);
      cur = next;
    }
    return cur;
  }
}

/** Totals of a subtree (counting the subtree's own directory); appends its extents to `into`. Iterative: deep trees cannot overflow the stack. */
function collect(e: Entry, into: Extent[] | undefined): Totals & { inlineBytes: number } {
  const t = { objects: 0, directories: 0, bytes: 0, inlineBytes: 0 };
  const stack: Entry[] = [e];
  while (stack.length > 0) {
    const cur = stack.pop()!;
    if (cur.kind === "object") {
      t.objects++;
      t.bytes += cur.size;
      t.inlineBytes += cur.inline?.byteLength ?? 0;
      if (into) for (const x of cur.extents) into.push(x);
    } else {
      t.directories++;
      for (const c of cur.children.values()) stack.push(c);
    }
  }
  return t;
}
