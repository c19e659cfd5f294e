import { ErrorCode } from "../../schemas/errors";
import { Namespace, parsePath } from "../../actors/metadata/namespace";
import { WeightedPicker } from "../../actors/metadata/placement";
import { freeSpaceWeights } from "../../actors/controller/weights";
import { parseBytes, parseRate, formatBytes, UnitError } from "../../lib/units";

const ext = (id: string, length: number) => ({ nodeId: "n", extentId: id, length, crc: 0 });

test("paths", () => {
  expect(parsePath("/a/b/")).toEqual(["a", "b"]);
  expect(parsePath("")).toEqual([]);
  for (const bad of ["a//b", "a/../b", ".", "x\0y", "a/" + "y".repeat(256)]) {
    expect(() => parsePath(bad)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  }
});

test("put, replace, delete and counts keep totals exact and return extents to free", () => {
  const ns = new Namespace(() => 5);
  ns.put(["a", "x"], 10, [ext("1", 10)], false);
  const r = ns.put(["a", "x"], 20, [ext("2", 20)], false);
  expect(r.replaced).toEqual([ext("1", 10)]);
  expect(r.entry.version).toBe(2);
  expect(() => ns.put(["a", "x"], 1, [], true)).toThrow(expect.objectContaining({ code: ErrorCode.AlreadyExists }));
  ns.put(["a", "b", "y"], 5, [ext("3", 5)], false);
  expect(ns.objects).toBe(2);
  expect(ns.bytes).toBe(25);
  expect(ns.count([], true)).toEqual({ objects: 2, directories: 2, bytes: 25 });
  expect(ns.count(["a"], false)).toEqual({ objects: 1, directories: 1, bytes: 20 });
  expect(() => ns.delete(["a"], false)).toThrow(expect.objectContaining({ code: ErrorCode.NotEmpty }));
  expect(() => ns.put(["a"], 1, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  expect(() => ns.put(["a", "x", "z"], 1, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.InvalidArgument }));
  const d = ns.delete([], true);
  expect(d.totals).toEqual({ objects: 2, directories: 2, bytes: 25 });
  expect(d.extents.map((e) => e.extentId).sort()).toEqual(["2", "3"]);
  expect(ns.objects).toBe(0);
  expect(ns.bytes).toBe(0);
});

test("weighted picking follows the weights and skips nodes that do not fit", () => {
  const p = new WeightedPicker([{ nodeId: "a", weight: 0.75 }, { nodeId: "b", weight: 0.25 }, { nodeId: "c", weight: 0 }]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const n = p.pick(() => true)!;
    counts[n] = (counts[n] ?? 0) + 1;
  }
  expect(counts).toEqual({ a: 300, b: 100 });
  expect(p.pick((id) => id === "b")).toBe("b");
  expect(p.pick(() => false)).toBeUndefined();
});

test("free-space weights sum to 1 and leave out full, dead and other-tier nodes", () => {
  const w = freeSpaceWeights([
    { nodeId: "a", tier: "dram", capacityBytes: 100, usedBytes: 0, live: true },
    { nodeId: "b", tier: "dram", capacityBytes: 100, usedBytes: 50, live: true },
    { nodeId: "c", tier: "dram", capacityBytes: 100, usedBytes: 100, live: true },
    { nodeId: "d", tier: "dram", capacityBytes: 100, usedBytes: 0, live: false },
    { nodeId: "e", tier: "nvme", capacityBytes: 100, usedBytes: 0, live: true },
  ], "dram");
  expect(w.map((x) => x.nodeId)).toEqual(["a", "b"]);
  expect(w[0]!.weight).toBeCloseTo(2 / 3, 12);
  expect(w.reduce((s, x) => s + x.weight, 0)).toBeCloseTo(1, 12);
  expect(freeSpaceWeights([], "dram")).toEqual([]);
});

test("units", () => {
  expect(parseBytes("10GiB")).toBe(10 * 2 ** 30);
  expect(parseBytes("1.5 KB")).toBe(1500);
  expect(parseBytes("512")).toBe(512);
  expect(parseRate("8Gbps")).toBe(1e9);
  expect(parseRate("100MB/s")).toBe(1e8);
  expect(() => parseBytes("lots")).toThrow(UnitError);
  expect(formatBytes(1536)).toBe("1.50 KiB");
});

test("a namespace holds a bounded number of entries, empty objects and directories included", () => {
  const ns = new Namespace(() => 0, 3);
  ns.put(["a", "b"], 0, [], false); // directory a + object b
  ns.mkdir(["c"]);
  expect(() => ns.put(["d"], 0, [], false)).toThrow(expect.objectContaining({ code: ErrorCode.CapacityExceeded }));
  expect(() => ns.mkdir(["e"])).toThrow(expect.objectContaining({ code: ErrorCode.CapacityExceeded }));
  ns.put(["a", "b"], 5, [], false); // overwriting takes no new entry
  ns.delete(["c"], false);
  ns.put(["d"], 0, [], false);
  expect(ns.count([], true)).toEqual({ objects: 2, directories: 1, bytes: 5 });
});
