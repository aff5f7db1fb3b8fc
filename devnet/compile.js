// Compile the third-party contracts the devnet places on chain, with solc-js 0.8.19 (offline).
// Usage: node compile.js <output dir> <jobs file>
// The jobs file (written by devnet/install.py from the venues' parts) is a JSON list of
//   {"name": ..., "root": <source root>, "contracts": {<Contract>: <source under root>}, "settings": <solc settings>}.
// Writes <output dir>/<Contract>.json = {abi, bytecode, deployedBytecode, ...} for each contract of each job.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

function compileJob(job, outDir) {
  const root = job.root;
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
  if (errors.length) throw new Error(`${job.name}: ` + errors.map((e) => e.formattedMessage).join("\n"));
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
  const [outDir, jobsFile, ...rest] = process.argv.slice(2);
  if (!outDir || !jobsFile || rest.length) throw new Error("usage: node compile.js <output dir> <jobs file>");
  const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));
  if (!Array.isArray(jobs) || !jobs.length) throw new Error(`${jobsFile}: expected a non-empty list of jobs`);
  for (const job of jobs) {
    for (const key of ["name", "root", "contracts", "settings"]) {
      if (!(key in job)) throw new Error(`${jobsFile}: a job lacks "${key}"`);
    }
    compileJob(job, outDir);
  }
}

main();
