import { closeInTurn } from "../../lib/shutdown";

test("every step runs in order whatever failed before it; the first failure is thrown, the later ones handed on", async () => {
  const ran: string[] = [];
  const later: unknown[] = [];
  const first = new Error("drain failed");
  const second = new Error("close failed");
  const run = closeInTurn([
    () => { ran.push("a"); },
    async () => { ran.push("b"); throw first; },
    () => { ran.push("c"); throw second; },
    async () => { ran.push("d"); },
  ], (e) => later.push(e));
  await expect(run).rejects.toBe(first);
  expect(ran).toEqual(["a", "b", "c", "d"]);
  expect(later).toEqual([second]);
  await expect(closeInTurn([() => undefined, async () => undefined], (e) => later.push(e))).resolves.toBeUndefined();
  expect(later).toEqual([second]);
});
