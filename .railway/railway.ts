// Railway Infrastructure as Code for kraken-copytrader: one service built from this repository's
// Dockerfile, one volume for its data folder, its variables, and how a deployment is stopped.
//
//   cd .railway && npm ci        # the `railway` SDK this file imports (package-lock.json)
//   railway link                 # the project and environment to manage
//   railway config plan          # what would change; review it
//   railway config apply
//
// Railway reads this file only through the CLI (`railway config plan/apply`), never at deploy
// time. Every field below is documented in Railway's IaC reference
// (docs.railway.com/infrastructure-as-code/reference) or typed by the `railway` npm package
// (3.11.0, dist/iac: ServiceConfigInput, BuildConfig, DeployConfig, VolumeConfig); the comment at
// each field names which.
import { defineRailway, github, preserve, project, service, volume } from "railway/iac";

// The GitHub repository Railway builds from: your fork or copy of this project.
const GITHUB_REPOSITORY = "your-github-account/kraken-copytrader";

// Credentials are never written here. Each is set in the dashboard (service → Variables) and
// marked preserve() (reference, "Environment variables"): `apply` keeps the value Railway holds
// and never deletes it, while a variable missing from this file would be planned for deletion.
// One pair per USER in config/accounts.toml (KRAKEN_USER_<env_name>_API_KEY / _SECRET); a test
// fails when a user is added there and not here.
const credentials = {
  KRAKEN_MASTER_API_KEY: preserve(),
  KRAKEN_MASTER_API_SECRET: preserve(),
  // The legacy names for MASTER's key, still read when the two above are unset.
  KRAKEN_API_KEY: preserve(),
  KRAKEN_API_SECRET: preserve(),
  KRAKEN_USER_DAIVON_API_KEY: preserve(),
  KRAKEN_USER_DAIVON_API_SECRET: preserve(),
  KRAKEN_USER_TANIA_API_KEY: preserve(),
  KRAKEN_USER_TANIA_API_SECRET: preserve(),
};

// Operator switches and overrides, set (or not) in the dashboard; preserve() keeps whatever is
// there and creates nothing.
const switches = {
  LOG_LEVEL: preserve(),
  LOG_FORMAT: preserve(),
  COPYTRADER_KILL_SWITCH: preserve(),
  COPYTRADER_CLOSE_ONLY: preserve(),
  COPYTRADER_DRY_RUN: preserve(),
  COPYTRADER_CONFIG: preserve(),
  COPYTRADER_DATA_DIR: preserve(),
  KRAKEN_API_URL: preserve(),
  // The status surface (/healthz, /status, /metrics) on Railway's PORT: the token that opens
  // /status and /metrics (a secret: set it in the dashboard), a port and address for running
  // it elsewhere, and after how many minutes of not copying `daemon.not_copying` is logged.
  COPYTRADER_STATUS_TOKEN: preserve(),
  COPYTRADER_STATUS_PORT: preserve(),
  COPYTRADER_STATUS_HOST: preserve(),
  COPYTRADER_NOT_COPYING_MINUTES: preserve(),
};

export default defineRailway(() => {
  // The data folder: nonce files, ledger, heartbeat, instance lock. The daemon finds it through
  // RAILWAY_VOLUME_MOUNT_PATH, which Railway sets to the mount path. Size and region are left
  // to Railway (the plan's default size; the data is a few megabytes).
  // Source: reference, "Volumes" (volume(name, config), volumeMounts).
  const data = volume("copytrader-data");

  const copytrader = service("kraken-copytrader", {
    // Reference, "Sources": github(repo, { branch }).
    source: github(GITHUB_REPOSITORY, { branch: "main" }),
    // BuildConfig in the `railway` package; Railway would also pick the root Dockerfile on its
    // own. No build command and no start command: the image's ENTRYPOINT (tini) and CMD
    // (start.sh) run the daemon, and a start command would replace tini.
    build: { builder: "DOCKERFILE", dockerfilePath: "Dockerfile" },
    // Reference, "Volumes": the key is the mount path inside the container.
    volumeMounts: { "/data": data },
    // Reference, "Services" (healthcheck, healthcheckTimeout): Railway calls this path on the
    // PORT it sets, where the daemon serves /healthz, and makes a new deployment live only once
    // it answers 200, which it does only while copying (MASTER read, a user ready). A
    // deployment that cannot copy within the timeout (a wrong key, every user locked out, the
    // kill switch on) is marked failed. Railway calls it only while deploying, never after.
    healthcheck: "/healthz",
    healthcheckTimeout: 300,
    // No replicas: one running copy per set of keys (nonces), and a volume allows only one.
    //
    // DeployConfig in the `railway` package (numbers, not strings); the CLI passes `deploy`
    // through to Railway unchanged. restartPolicyType/MaxRetries: Railway's default policy, On
    // Failure with 10 restarts, written out so that nobody has to look it up. drainingSeconds:
    // time between SIGTERM and SIGKILL (Railway's default is 0); the daemon drains well inside
    // it. overlapSeconds 0: the old deployment never runs beside the new one with the same keys.
    deploy: {
      restartPolicyType: "ON_FAILURE",
      restartPolicyMaxRetries: 10,
      drainingSeconds: 30,
      overlapSeconds: 0,
    },
    env: {
      ...credentials,
      ...switches,
      // The documented service variables for the same two settings (docs.railway.com,
      // deployments/deployment-teardown and variables/reference): what Railway honours even
      // where the `deploy` fields above are not applied. Variable values are strings.
      RAILWAY_DEPLOYMENT_DRAINING_SECONDS: "30",
      RAILWAY_DEPLOYMENT_OVERLAP_SECONDS: "0",
    },
  });

  return project("kraken-copytrader", {
    resources: [copytrader, data],
  });
});
