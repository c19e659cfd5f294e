import { fromPublic, fromSeed as referenceFromSeed } from "@nats-io/nkeys";
import { newNkey, nkeyFromSeed, nkeyVerify, type NkeyKind } from "../../bus/nkeys";

/** Our native nkeys against the nats.js reference implementation (tweetnacl): same text forms, same signatures. */
describe.each(["operator", "account", "user"] as NkeyKind[])("%s keys", (kind) => {
  test("seed and public key decode to the same pair in the reference implementation", () => {
    for (let i = 0; i < 20; i++) {
      const ours = newNkey(kind);
      const ref = referenceFromSeed(ours.getSeed());
      expect(ref.getPublicKey()).toBe(ours.getPublicKey());
      expect(ours.getPublicKey()[0]).toBe({ operator: "O", account: "A", user: "U" }[kind]);
      const data = Buffer.from(`message ${i}`);
      const sig = ours.sign(data);
      expect(Buffer.from(sig).equals(Buffer.from(ref.sign(data)))).toBe(true); // Ed25519 is deterministic
      expect(fromPublic(ours.getPublicKey()).verify(data, sig)).toBe(true);
      expect(nkeyVerify(ours.getPublicKey(), data, ref.sign(data))).toBe(true);
      expect(nkeyVerify(ours.getPublicKey(), Buffer.from("other"), sig)).toBe(false);
      expect(nkeyFromSeed(Buffer.from(ours.getSeed()).toString()).getPublicKey()).toBe(ours.getPublicKey());
    }
  });
});

test("a corrupted seed or key is refused", () => {
  const k = newNkey("user");
  const seed = Buffer.from(k.getSeed()).toString();
  const flipped = seed.slice(0, 10) + (seed[10] === "A" ? "B" : "A") + seed.slice(11);
  expect(() => nkeyFromSeed(flipped)).toThrow(/checksum|nkey/);
  expect(() => nkeyVerify(`${k.getPublicKey().slice(0, -1)}Q`, Buffer.from("x"), Buffer.alloc(64))).toThrow(/nkey/);
});
