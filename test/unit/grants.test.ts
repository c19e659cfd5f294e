import { ErrorCode, InvalidArgumentError, UnauthorizedError } from "../../schemas/errors";
import { WireLimits } from "../../schemas/operations";
import { ManualClock } from "../../lib/clock";
import { TokenAuthority, type GrantClaims } from "../../bus/tokens";

const secret = "0123456789abcdef0123456789abcdef";
const claims: GrantClaims = { jobId: "j-1", nodeId: "dram-0", extentId: "boot.1", length: 100 };

function failure(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a failure");
}

test("a grant allows exactly one job, node, extent id and length, until it expires", () => {
  const clock = new ManualClock(1_000_000);
  const t = new TokenAuthority(secret, clock);
  const grant = t.issueGrant(claims, 60_000);
  expect(grant.length).toBeLessThanOrEqual(WireLimits.grantBytesMax);
  expect(t.verifyGrant(grant, claims)).toEqual({ expiresAtMs: 1_060_000 });
  for (const other of [{ jobId: "j-2" }, { nodeId: "dram-1" }, { extentId: "boot.2" }]) {
    const e = failure(() => t.verifyGrant(grant, { ...claims, ...other }));
    expect(e).toBeInstanceOf(UnauthorizedError);
  }
  clock.advance(60_000);
  expect(failure(() => t.verifyGrant(grant, claims))).toMatchObject({ code: ErrorCode.Unauthorized, message: expect.stringMatching(/expired/) });
});

test("a genuine grant for another length is InvalidArgument naming both lengths", () => {
  const t = new TokenAuthority(secret, new ManualClock(0));
  const small = t.issueGrant({ ...claims, length: 100 }, 1000);
  const big = t.issueGrant({ ...claims, length: 3000 }, 1000);
  const over = failure(() => t.verifyGrant(small, { ...claims, length: 200 }));
  expect(over).toBeInstanceOf(InvalidArgumentError);
  expect((over as Error).message).toMatch(/100 bytes.*200/);
  const under = failure(() => t.verifyGrant(big, { ...claims, length: 10 }));
  expect(under).toBeInstanceOf(InvalidArgumentError);
  expect((under as Error).message).toMatch(/3000 bytes.*10/);
});

test("missing, malformed, forged and foreign grants are Unauthorized", () => {
  const clock = new ManualClock(0);
  const t = new TokenAuthority(secret, clock);
  const grant = t.issueGrant(claims, 60_000);
  const [length, expiry, tag] = grant.split(".") as [string, string, string];
  const flipped = `${tag.slice(0, 5)}${tag[5] === "A" ? "B" : "A"}${tag.slice(6)}`;
  const forged = [
    undefined, "", "x", `${length}.${expiry}`, `${length}.${expiry}.${flipped}`,
    // A longer life or another length under the same MAC.
    `${length}.${(parseInt(expiry, 36) + 1).toString(36)}.${tag}`, `${(200).toString(36)}.${expiry}.${tag}`,
    new TokenAuthority("another-secret-of-enough-bytes", clock).issueGrant(claims, 60_000),
    `${grant}.x`, ` ${grant}`,
  ];
  for (const bad of forged) expect(failure(() => t.verifyGrant(bad, claims))).toBeInstanceOf(UnauthorizedError);
});

test("receipts bind job, node, extent, length and crc", () => {
  const t = new TokenAuthority(secret, new ManualClock(0));
  const r = { ...claims, crc: 0xcbf43926 };
  const receipt = t.issueReceipt(r);
  expect(() => t.verifyReceipt(receipt, r)).not.toThrow();
  for (const other of [{ jobId: "j-2" }, { nodeId: "dram-1" }, { extentId: "boot.2" }, { length: 101 }, { crc: 0xcbf43927 }]) {
    expect(failure(() => t.verifyReceipt(receipt, { ...r, ...other }))).toBeInstanceOf(UnauthorizedError);
  }
  for (const bad of [undefined, "", "AAAAAAAAAAAAAAAAAAAAAA", receipt.slice(1)]) {
    expect(failure(() => t.verifyReceipt(bad, r))).toBeInstanceOf(UnauthorizedError);
  }
  expect(failure(() => new TokenAuthority("another-secret-of-enough-bytes", new ManualClock(0)).verifyReceipt(receipt, r))).toBeInstanceOf(UnauthorizedError);
});

test("a grant's MAC never passes for a receipt, nor a receipt's for a grant (domain separation)", () => {
  const clock = new ManualClock(5_000);
  const t = new TokenAuthority(secret, clock);
  const grant = t.issueGrant(claims, 1_000);
  const [length, expiry, grantTag] = grant.split(".") as [string, string, string];
  // The same numbers in the crc's place: only the domain tells them apart.
  expect(failure(() => t.verifyReceipt(grantTag, { ...claims, crc: parseInt(expiry, 36) }))).toBeInstanceOf(UnauthorizedError);
  const receipt = t.issueReceipt({ ...claims, crc: 6_000 });
  expect(failure(() => t.verifyGrant(`${length}.${(6_000).toString(36)}.${receipt}`, claims))).toBeInstanceOf(UnauthorizedError);
});

test("tokens, grants and receipts have one spelling: respelled signatures are refused", () => {
  const clock = new ManualClock(1_000);
  const t = new TokenAuthority("a-secret-of-at-least-sixteen-bytes", clock);
  const token = t.issueJob("j-1", "s0", 60_000);
  expect(t.verifyJob(token).jobId).toBe("j-1");
  for (const bad of [`${token}!`, `${token}==`, `${token.slice(0, -3)}*${token.slice(-3)}`]) expect(() => t.verify(bad)).toThrow(UnauthorizedError);
  const claims = { jobId: "j-1", nodeId: "n0", extentId: "x.1", length: 100 };
  const grant = t.issueGrant(claims, 60_000);
  expect(t.verifyGrant(grant, claims).expiresAtMs).toBeGreaterThan(1_000);
  const [len, exp, tag] = grant.split(".");
  for (const bad of [`0${len}.${exp}.${tag}`, `${len}.0${exp}.${tag}`, `${len}.${exp}.${tag}=`, `${grant}!`]) {
    expect(() => t.verifyGrant(bad, claims)).toThrow(UnauthorizedError);
  }
  // The last character of a 16-byte tag carries 4 unused bits: flipping them must not verify.
  const last = tag!.slice(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
  expect(() => t.verifyGrant(`${len}.${exp}.${tag!.slice(0, -1)}${sibling}`, claims)).toThrow(UnauthorizedError);
  const receiptClaims = { ...claims, crc: 7 };
  const receipt = t.issueReceipt(receiptClaims);
  expect(() => t.verifyReceipt(receipt, receiptClaims)).not.toThrow();
  expect(() => t.verifyReceipt(`${receipt}.`, receiptClaims)).toThrow(UnauthorizedError);
  expect(() => t.verifyReceipt(`${receipt.slice(0, -1)}${alphabet[alphabet.indexOf(receipt.slice(-1)) ^ 1]}`, receiptClaims)).toThrow(UnauthorizedError);
});
