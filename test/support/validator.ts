// Helpers for cross-checking sev/ against libvirt's virt-qemu-sev-validate (the external oracle),
// run offline: the measurement and every launch input are passed on its command line.
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { PYTHON, VALIDATOR } from './it-env.js';

export { DEBIAN_OVMF, PYTHON, VALIDATOR } from './it-env.js';
export const HAVE_VALIDATOR = existsSync(PYTHON) && existsSync(VALIDATOR);

export interface ValidatorArgs {
  readonly measurement: string;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly policy: number;
  readonly firmware: string;
  readonly tik: string;
  readonly tek: string;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly cmdline?: string;
  readonly numCpus?: number;
  readonly sku?: readonly [family: number, model: number, stepping: number];
  readonly secrets?: readonly string[];
  readonly secretHeader?: string;
  readonly secretPayload?: string;
}

export function validatorArgv(a: ValidatorArgs): string[] {
  const argv = [
    VALIDATOR,
    '--measurement',
    a.measurement,
    '--api-major',
    String(a.apiMajor),
    '--api-minor',
    String(a.apiMinor),
    '--build-id',
    String(a.buildId),
    '--policy',
    String(a.policy),
    '--firmware',
    a.firmware,
    '--tik',
    a.tik,
    '--tek',
    a.tek,
  ];
  if (a.kernel !== undefined) argv.push('--kernel', a.kernel);
  if (a.initrd !== undefined) argv.push('--initrd', a.initrd);
  // `--cmdline=` form so an empty string or a leading dash stays one argument.
  if (a.cmdline !== undefined) argv.push(`--cmdline=${a.cmdline}`);
  if (a.numCpus !== undefined) argv.push('--num-cpus', String(a.numCpus));
  if (a.sku !== undefined) {
    argv.push('--cpu-family', String(a.sku[0]), '--cpu-model', String(a.sku[1]), '--cpu-stepping', String(a.sku[2]));
  }
  for (const s of a.secrets ?? []) argv.push('--inject-secret', s);
  if (a.secretHeader !== undefined) argv.push('--secret-header', a.secretHeader);
  if (a.secretPayload !== undefined) argv.push('--secret-payload', a.secretPayload);
  return argv;
}

/** Run the validator; resolves to its exit code and stderr (never rejects for a non-zero exit). */
export async function runValidator(a: ValidatorArgs): Promise<{ exitCode: number; stderr: string }> {
  const result = await execa(PYTHON, validatorArgv(a), { reject: false, timeout: 60_000 });
  return { exitCode: result.exitCode ?? -1, stderr: String(result.stderr) };
}

/**
 * The validator's own script, run once per argv in one interpreter: runpy executes it afresh as
 * `__main__` each time (its module state is new; only the libraries it imports are loaded once),
 * with its stdout and stderr captured and its exit status taken from SystemExit as the interpreter
 * would (an uncaught exception: 1). Reads a JSON array of argv arrays on stdin.
 */
const BATCH_DRIVER = `
import contextlib, io, json, runpy, sys
validator = sys.argv[1]
results = []
for args in json.load(sys.stdin):
    err = io.StringIO()
    sys.argv = [validator, *args]
    code = 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(validator, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except Exception as e:
            print(repr(e), file=err)
            code = 1
    results.append({"exitCode": code, "stderr": err.getvalue()})
json.dump(results, sys.stdout)
`;

/**
 * The validator on many argvs (each without the script's path) in one Python process: the same
 * verdicts as one process each, without an interpreter start and the validator's imports per run.
 */
export async function runValidatorBatch(argvs: readonly (readonly string[])[]): Promise<{ exitCode: number; stderr: string }[]> {
  const result = await execa(PYTHON, ['-c', BATCH_DRIVER, VALIDATOR], { input: JSON.stringify(argvs), reject: false, timeout: 300_000 });
  if (result.exitCode !== 0) throw new Error(`the validator batch failed (exit ${String(result.exitCode)}): ${String(result.stderr)}`);
  const parsed = JSON.parse(String(result.stdout)) as { exitCode: number; stderr: string }[];
  if (parsed.length !== argvs.length) throw new Error(`the validator batch answered ${parsed.length} of ${argvs.length} runs`);
  return parsed;
}

/** Map with at most `limit` promises in flight (2 cores shared with other work). */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
