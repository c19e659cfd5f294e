import { generateKeyPairSync, sign, verify } from "node:crypto";
import { Ed25519KeyBytes, privateKeyFromSeed, publicKeyFromRaw, rawPublicKey, rawSeed } from "../../lib/ed25519";

test("raw Ed25519 keys round-trip through their DER forms and are the bytes JWK names", () => {
  for (let i = 0; i < 20; i++) {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const jwk = privateKey.export({ format: "jwk" });
    const raw = rawPublicKey(publicKey);
    const seed = rawSeed(privateKey);
    expect(raw.toString("base64url")).toBe(jwk.x);
    expect(seed.toString("base64url")).toBe(jwk.d);
    expect(rawPublicKey(privateKey).equals(raw)).toBe(true);
    expect(publicKeyFromRaw(raw).equals(publicKey)).toBe(true);
    const again = privateKeyFromSeed(seed);
    const message = Buffer.from(`message ${i}`);
    expect(verify(null, message, publicKeyFromRaw(raw), sign(null, message, again))).toBe(true);
  }
});

test("a key of the wrong length or kind is a TypeError", () => {
  expect(() => publicKeyFromRaw(new Uint8Array(Ed25519KeyBytes - 1))).toThrow(TypeError);
  expect(() => privateKeyFromSeed(new Uint8Array(Ed25519KeyBytes + 1))).toThrow(TypeError);
  const { publicKey } = generateKeyPairSync("x25519");
  expect(() => rawPublicKey(publicKey)).toThrow(TypeError);
});
