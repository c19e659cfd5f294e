import { ErrorCode, UnauthorizedError } from "../../schemas/errors";
import { ManualClock } from "../../lib/clock";
import { peekJobClaims, TokenAuthority } from "../../bus/tokens";

const secret = "0123456789abcdef0123456789abcdef";

test("job tokens carry job and shard, and expire", () => {
  const clock = new ManualClock(1_000_000);
  const t = new TokenAuthority(secret, clock);
  const token = t.issueJob("j-1", "s0", 60_000);
  expect(t.verifyJob(token)).toEqual({ kind: "job", jobId: "j-1", shardId: "s0", expiresAtMs: 1_060_000 });
  expect(t.verifyJob(token, "j-1").jobId).toBe("j-1");
  expect(() => t.verifyJob(token, "j-2")).toThrow(UnauthorizedError);
  expect(peekJobClaims(token).shardId).toBe("s0");
  clock.advance(60_000);
  expect(() => t.verifyJob(token)).toThrow(/expired/);
});

test("tampering, other secrets and wrong kinds are refused", () => {
  const clock = new ManualClock(0);
  const t = new TokenAuthority(secret, clock);
  const token = t.issueJob("j-1", "s0", 60_000);
  const [body, sig] = token.split(".");
  const forged = Buffer.from(JSON.stringify({ k: "job", j: "j-2", s: "s0", e: 60_000 })).toString("base64url");
  for (const bad of [`${forged}.${sig}`, `${body}.${sig}x`, `${body}`, "", "a.b.c", `${body}.`]) {
    let e: unknown;
    try { t.verify(bad); } catch (err) { e = err; }
    expect(e).toMatchObject({ code: ErrorCode.Unauthorized });
  }
  expect(() => new TokenAuthority("another-secret-of-enough-bytes", clock).verify(token)).toThrow(UnauthorizedError);
  expect(() => t.verifyJob(token, "j-2")).toThrow(/another job/);
  expect(() => t.verify(undefined)).toThrow(/required/);
  expect(() => new TokenAuthority("short", clock)).toThrow();
});
