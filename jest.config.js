/**
 * Tests run from TypeScript sources (swc); actor processes they spawn run the built JS in dist/,
 * which the global setup rebuilds first when a source is newer than its build.
 */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  rootDir: __dirname,
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["@swc/jest", { jsc: { target: "es2022" } }] },
  globalSetup: "<rootDir>/test/harness/global-setup.ts",
  setupFiles: ["<rootDir>/test/harness/setup.ts"],
  testTimeout: 60000,
  maxWorkers: 2,
};
