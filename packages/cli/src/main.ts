#!/usr/bin/env node
import { keys } from "./keys.js";
import { describeStartupError, up } from "./up.js";

const HELP = `Usage: polydev <command> [options]

Commands:
  up        start the Polydev server (polydev up --help)
  keys      rotate the vault's master key (polydev keys --help)

Run 'polydev <command> --help' for a command's options.
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "up":
      return up(rest, process.env);
    case "keys":
      return keys(rest, process.env);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`polydev: unknown command "${command}"\n${HELP}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${describeStartupError(error)}\n`);
    process.exit(1);
  },
);
