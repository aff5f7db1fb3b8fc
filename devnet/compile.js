// Compile the vendored third-party contracts the devnet places on chain, with solc-js (offline).
// Usage: node compile.js <source root> <output dir>
// Writes <output dir>/<Contract>.json = {abi, bytecode, deployedBytecode} for each entry of CONTRACTS.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

// Paths relative to the source root (the untarred @chainlink/contracts package).
const CONTRACTS = {
  MockV3Aggregator: "src/v0.8/shared/mocks/MockV3Aggregator.sol",
  Multicall3: "src/v0.8/vendor/multicall/ebd8b64/src/Multicall3.sol",
};

function main() {
  const [root, outDir] = process.argv.slice(2);
  if (!root || !outDir) throw new Error("usage: node compile.js <source root> <output dir>");
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(
      Object.values(CONTRACTS).map((rel) => [rel, { content: fs.readFileSync(path.join(root, rel), "utf8") }])
    ),
    settings: {
      evmVersion: "paris",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const findImports = (rel) => {
    const file = path.join(root, rel);
    return fs.existsSync(file) ? { contents: fs.readFileSync(file, "utf8") } : { error: `not found: ${rel}` };
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  fs.mkdirSync(outDir, { recursive: true });
  for (const [name, rel] of Object.entries(CONTRACTS)) {
    const c = output.contracts[rel][name];
    const artifact = {
      contractName: name,
      source: rel,
      compiler: `solc-js ${solc.version()}`,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(artifact, null, 1));
  }
}

main();
