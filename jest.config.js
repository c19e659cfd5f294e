/** Tests run from TypeScript sources (swc); actor processes they spawn run the built JS in dist/. */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  rootDir: __dirname,
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022" } }] },
  setupFiles: ["<rootDir>/test/harness/setup.ts"],
  testTimeout: 60000,
  maxWorkers: 2,
};
