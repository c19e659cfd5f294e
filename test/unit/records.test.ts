import { checksum, firstUnsorted, generateRecords, partition, partitionOf, recordBytes, sortRecords } from "../../examples/sort/records";

test("the sort job's record functions: partition, sort and checksum agree", () => {
  const recs = generateRecords(5000, 3, 0);
  expect(generateRecords(5000, 3, 0).equals(recs)).toBe(true);
  const parts = partition(recs, 4);
  expect(parts.reduce((s, p) => s + p.byteLength, 0)).toBe(recs.byteLength);
  parts.forEach((p, i) => { for (let r = 0; r < p.byteLength / recordBytes; r++) expect(partitionOf(p, r, 4)).toBe(i); });
  const sorted = parts.map(sortRecords);
  for (const s of sorted) expect(firstUnsorted(s)).toBe(-1);
  expect(firstUnsorted(recs)).toBeGreaterThan(0);
  const all = Buffer.concat(sorted);
  expect(firstUnsorted(all)).toBe(-1);
  expect(checksum(all)).toEqual(checksum(recs));
  const corrupt = Buffer.from(all);
  corrupt[12345] = corrupt[12345]! ^ 1;
  expect(checksum(corrupt)).not.toEqual(checksum(recs));
});
