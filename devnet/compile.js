// Compile the third-party contracts the devnet places on chain, with solc-js 0.8.19 (offline).
// Usage: node compile.js <output dir> <job>=<source root> [<job>=<source root> ...]
// Jobs: chainlink (the untarred @chainlink/contracts package), morpho (node_modules/@morpho-org/morpho-blue).
// Writes <output dir>/<Contract>.json = {abi, bytecode, deployedBytecode, ...} for each contract of each job.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const JOBS = {
  // Both MIT; the settings of the devnet's first version.
  chainlink: {
    contracts: {
      MockV3Aggregator: "src/v0.8/shared/mocks/MockV3Aggregator.sol",
      Multicall3: "src/v0.8/vendor/multicall/ebd8b64/src/Multicall3.sol",
    },
    settings: { evmVersion: "paris", optimizer: { enabled: true, runs: 200 } },
  },
  // @morpho-org/morpho-blue@1.0.0 with the settings Morpho deployed with (via-IR, 999999 runs); its own mocks.
  morpho: {
    contracts: {
      Morpho: "src/Morpho.sol",
      IrmMock: "src/mocks/IrmMock.sol",
      OracleMock: "src/mocks/OracleMock.sol",
    },
    settings: { evmVersion: "paris", viaIR: true, optimizer: { enabled: true, runs: 999999 } },
  },
};

function compileJob(name, root, outDir) {
  const job = JOBS[name];
  if (!job) throw new Error(`unknown job ${name}; known: ${Object.keys(JOBS)}`);
  const input = {
    language: "Solidity",
    sources: Object.fromEntries(
      Object.values(job.contracts).map((rel) => [rel, { content: fs.readFileSync(path.join(root, rel), "utf8") }])
    ),
    settings: {
      ...job.settings,
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
  for (const [contract, rel] of Object.entries(job.contracts)) {
    const c = output.contracts[rel][contract];
    const artifact = {
      contractName: contract,
      source: rel,
      compiler: `solc-js ${solc.version()}`,
      settings: job.settings,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    fs.writeFileSync(path.join(outDir, `${contract}.json`), JSON.stringify(artifact, null, 1));
  }
}

function main() {
  const [outDir, ...jobs] = process.argv.slice(2);
  if (!outDir || !jobs.length) throw new Error("usage: node compile.js <output dir> <job>=<source root> ...");
  for (const spec of jobs) {
    const eq = spec.indexOf("=");
    if (eq < 0) throw new Error(`expected <job>=<source root>, got ${spec}`);
    compileJob(spec.slice(0, eq), spec.slice(eq + 1), outDir);
  }
}

main();
