// Makes the CLI entry executable after tsc has written it.
const fs = require("node:fs");
const path = require("node:path");
fs.chmodSync(path.join(__dirname, "..", "dist", "cli", "pocket.js"), 0o755);
