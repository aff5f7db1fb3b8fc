// Hardhat config that deploys Aave v3's published test market (from @aave/deploy-v3's own artifacts and
// deploy scripts, no compilation) onto an anvil node: the Aave v3 part's deployer (devnet/venues/aave_v3.py) runs,
// in devnet/,
//   ANVIL_RPC_URL=http://127.0.0.1:PORT MARKET_NAME=Test npx hardhat --config venues/aave_v3.hardhat.config.js \
//     deploy --network anvil --no-compile
// The project root stays devnet/ (node_modules, deployments), whatever folder holds this file.
const path = require("path");
require("@nomiclabs/hardhat-ethers");
require("hardhat-deploy");
const { task } = require("hardhat/config");
const { loadTasks } = require("@aave/deploy-v3/dist/helpers/hardhat-config-helpers");
const { DEFAULT_NAMED_ACCOUNTS } = require("@aave/deploy-v3/dist/helpers/constants");

// The deploy scripts call tasks they define in these folders.
loadTasks(["misc"]);

// @aave/deploy-v3@1.56.2 runs this task after deploying a testnet market but does not ship it (HH303),
// which leaves the pool paused. Wrapped native tokens are not mintable by the faucet (wrap ETH instead)
// and not borrowable, as the upstream task intends. Stable-rate borrowing must be switched off before
// borrowing, or PoolConfigurator reverts with '88' (STABLE_BORROWING_ENABLED).
task("disable-faucet-native-testnets", "Disable faucet minting and borrowing of the wrapped native token")
  .setAction(async (_, hre) => {
    const { getFaucet, getPoolConfiguratorProxy, getTestnetReserveAddressFromSymbol } = require(
      "@aave/deploy-v3/dist/helpers/contract-getters"
    );
    const weth = await getTestnetReserveAddressFromSymbol("WETH");
    const faucet = await getFaucet();
    await (await faucet.setMintable(weth, false)).wait();
    const configurator = await getPoolConfiguratorProxy();
    await (await configurator.setReserveStableRateBorrowing(weth, false)).wait();
    await (await configurator.setReserveBorrowing(weth, false)).wait();
  });

module.exports = {
  networks: {
    anvil: {
      url: process.env.ANVIL_RPC_URL || "http://127.0.0.1:8545",
      chainId: 31337,
      live: false,
      saveDeployments: true,
      tags: ["local"],
    },
  },
  namedAccounts: { ...DEFAULT_NAMED_ACCOUNTS },
  paths: {
    root: path.resolve(__dirname, ".."),
    deployments: process.env.XMARGIN_DEPLOYMENTS_DIR || "deployments",
  },
  external: {
    contracts: [
      {
        artifacts: "node_modules/@aave/deploy-v3/artifacts",
        deploy: "node_modules/@aave/deploy-v3/dist/deploy",
      },
    ],
  },
  mocha: { timeout: 0 },
};
