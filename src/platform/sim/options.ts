// The simulated SEV platform's own command-line options (`--sim-*`), which come before QEMU's argv.
// Owns: their names, defaults and parsing, the simulated firmware's version, and simArgs() (what
// the launcher puts in front of buildQemuArgv's argv). Pure: no I/O.
// Must not: interpret QEMU's options (argv-rewrite.ts does). Parsing stops at the first argument
// that is not a `--sim-` option, so QEMU's argv reaches QEMU untouched.

export const SIM_FAULTS = ['wrong-policy', 'sev-disabled', 'no-measurement', 'crash-on-cont', 'slow-qmp'] as const;
export type SimFault = (typeof SIM_FAULTS)[number];

export type SimReplyShape = '7.2' | '9.1';
export type SimAccel = 'tcg' | 'kvm';

export interface SimOptions {
  /** QEMU binary run underneath. @default 'qemu-system-x86_64' (from PATH) */
  readonly qemu?: string;
  /** File with the 16-byte TIK. @default generated, written 0600 as `sim-tik.bin` next to the monitor socket */
  readonly tik?: string;
  /** File with the 16-byte TEK. @default generated, written 0600 as `sim-tek.bin` next to the monitor socket */
  readonly tek?: string;
  /** Fault switches for tests; several may be given. @default none */
  readonly faults?: readonly SimFault[];
  /** Delay of every QMP reply with the `slow-qmp` fault. @default 2000 */
  readonly delayMs?: number;
  /** `query-sev` reply shape: 7.2's flat struct, or 9.1+'s union with `sev-type`. @default '7.2' */
  readonly replyShape?: SimReplyShape;
  /** Accelerator of the QEMU underneath (guest code faults under nested KVM here). @default 'tcg' */
  readonly accel?: SimAccel;
  /** Simulated SEV firmware API version and build (query-sev, measurement). @default 1.55 build 21 */
  readonly apiMajor?: number;
  readonly apiMinor?: number;
  readonly buildId?: number;
  /**
   * The sim's state directory (the simulated SNP platform's chain and chip key, made on first use).
   * @default $SEVSUP_SIM_STATE_DIR, else $XDG_STATE_HOME/sevsup-sim (~/.local/state/sevsup-sim)
   */
  readonly stateDir?: string;
}

export interface ResolvedSimOptions {
  readonly qemu: string;
  readonly tik: string | null;
  readonly tek: string | null;
  readonly faults: ReadonlySet<SimFault>;
  readonly delayMs: number;
  readonly replyShape: SimReplyShape;
  readonly accel: SimAccel;
  readonly apiMajor: number;
  readonly apiMinor: number;
  readonly buildId: number;
  readonly stateDir: string | null;
}

/**
 * The simulated firmware: SEV API 1.55, build 21, i.e. a recent Milan/Genoa SEV firmware (the
 * measurement HMAC covers these bytes, so they are fixed unless a test asks for others).
 */
export const SIM_PLATFORM_DEFAULTS = { apiMajor: 1, apiMinor: 55, buildId: 21 } as const;

/** slow-qmp's default: long enough to trip a supervisor's short test timeouts, short enough for a suite. */
export const DEFAULT_SLOW_QMP_DELAY_MS = 2000;

/** Upper bound for --sim-delay-ms: a minute is already "hung" for any caller. */
const MAX_DELAY_MS = 60_000;

export const DEFAULT_SIM_QEMU = 'qemu-system-x86_64';

export function resolveSimOptions(o: SimOptions = {}): ResolvedSimOptions {
  return {
    qemu: o.qemu ?? DEFAULT_SIM_QEMU,
    tik: o.tik ?? null,
    tek: o.tek ?? null,
    faults: new Set(o.faults ?? []),
    delayMs: o.delayMs ?? DEFAULT_SLOW_QMP_DELAY_MS,
    replyShape: o.replyShape ?? '7.2',
    accel: o.accel ?? 'tcg',
    apiMajor: o.apiMajor ?? SIM_PLATFORM_DEFAULTS.apiMajor,
    apiMinor: o.apiMinor ?? SIM_PLATFORM_DEFAULTS.apiMinor,
    buildId: o.buildId ?? SIM_PLATFORM_DEFAULTS.buildId,
    stateDir: o.stateDir ?? null,
  };
}

/** The `--sim-*` prefix for `o`: only what differs from the defaults is spelled out. */
export function simArgs(o: SimOptions): string[] {
  const args: string[] = [];
  if (o.qemu !== undefined) args.push('--sim-qemu', o.qemu);
  if (o.tik !== undefined) args.push('--sim-tik', o.tik);
  if (o.tek !== undefined) args.push('--sim-tek', o.tek);
  for (const fault of o.faults ?? []) args.push('--sim-fault', fault);
  if (o.delayMs !== undefined) args.push('--sim-delay-ms', String(o.delayMs));
  if (o.replyShape !== undefined) args.push('--sim-reply-shape', o.replyShape);
  if (o.accel !== undefined) args.push('--sim-accel', o.accel);
  if (o.apiMajor !== undefined) args.push('--sim-api-major', String(o.apiMajor));
  if (o.apiMinor !== undefined) args.push('--sim-api-minor', String(o.apiMinor));
  if (o.buildId !== undefined) args.push('--sim-build-id', String(o.buildId));
  if (o.stateDir !== undefined) args.push('--sim-state-dir', o.stateDir);
  return args;
}

export type ParsedSimCommandLine =
  | { readonly kind: 'run'; readonly options: ResolvedSimOptions; readonly qemuArgv: readonly string[] }
  | { readonly kind: 'help' }
  /** `--sim-init-snp-platform`: make the simulated SNP platform's chain now (install time) and exit. */
  | { readonly kind: 'init'; readonly options: ResolvedSimOptions }
  | { readonly kind: 'error'; readonly message: string };

const VALUE_OPTIONS = [
  'qemu',
  'tik',
  'tek',
  'fault',
  'delay-ms',
  'reply-shape',
  'accel',
  'api-major',
  'api-minor',
  'build-id',
  'state-dir',
] as const;
type ValueOption = (typeof VALUE_OPTIONS)[number];

function isValueOption(name: string): name is ValueOption {
  return (VALUE_OPTIONS as readonly string[]).includes(name);
}

function parseByte(name: string, text: string): number | string {
  if (!/^\d{1,3}$/.test(text) || Number(text) > 255) return `--sim-${name} must be an integer 0..255, got '${text}'`;
  return Number(text);
}

/**
 * Split `argv` (without node and script) into the sim's options and QEMU's argv. `--sim-x=v` and
 * `--sim-x v` both work; `--help`/`--sim-help` as the first argument asks for help.
 */
export function parseSimCommandLine(argv: readonly string[]): ParsedSimCommandLine {
  const o: {
    -readonly [K in keyof SimOptions]: SimOptions[K];
  } = {};
  const faults: SimFault[] = [];
  let i = 0;
  let init = false;
  if (argv[0] === '--help' || argv[0] === '--sim-help' || argv[0] === '-h') return { kind: 'help' };
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--sim-')) break;
    if (arg === '--sim-help') return { kind: 'help' };
    if (arg === '--sim-init-snp-platform') {
      init = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice('--sim-'.length, eq < 0 ? undefined : eq);
    if (!isValueOption(name)) return { kind: 'error', message: `unknown option '${arg}' (see --sim-help)` };
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined) return { kind: 'error', message: `option '--sim-${name}' needs a value` };
      value = next;
      i++;
    }
    switch (name) {
      case 'qemu':
      case 'tik':
      case 'tek':
      case 'state-dir':
        if (value === '') return { kind: 'error', message: `--sim-${name} needs a non-empty path` };
        if (name === 'state-dir') o.stateDir = value;
        else o[name] = value;
        break;
      case 'fault':
        if (!(SIM_FAULTS as readonly string[]).includes(value)) {
          return { kind: 'error', message: `--sim-fault must be one of ${SIM_FAULTS.join(', ')}; got '${value}'` };
        }
        faults.push(value as SimFault);
        break;
      case 'delay-ms': {
        const n = Number(value);
        if (!/^\d+$/.test(value) || n > MAX_DELAY_MS) {
          return { kind: 'error', message: `--sim-delay-ms must be an integer 0..${MAX_DELAY_MS}, got '${value}'` };
        }
        o.delayMs = n;
        break;
      }
      case 'reply-shape':
        if (value !== '7.2' && value !== '9.1') return { kind: 'error', message: `--sim-reply-shape must be 7.2 or 9.1, got '${value}'` };
        o.replyShape = value;
        break;
      case 'accel':
        if (value !== 'tcg' && value !== 'kvm') return { kind: 'error', message: `--sim-accel must be tcg or kvm, got '${value}'` };
        o.accel = value;
        break;
      case 'api-major':
      case 'api-minor':
      case 'build-id': {
        const n = parseByte(name, value);
        if (typeof n === 'string') return { kind: 'error', message: n };
        if (name === 'api-major') o.apiMajor = n;
        else if (name === 'api-minor') o.apiMinor = n;
        else o.buildId = n;
        break;
      }
    }
  }
  if (faults.length > 0) o.faults = faults;
  if (init) {
    if (i < argv.length) return { kind: 'error', message: '--sim-init-snp-platform takes no QEMU arguments' };
    return { kind: 'init', options: resolveSimOptions(o) };
  }
  return { kind: 'run', options: resolveSimOptions(o), qemuArgv: argv.slice(i) };
}

export const SIM_HELP = `Usage: sevsup-sim-qemu [--sim-OPTION VALUE]... QEMU-ARGUMENTS...

A SIMULATED AMD SEV platform for hosts without SEV hardware. It is NOT a security boundary:
nothing is encrypted, the guest runs as a plain VM under the real qemu-system-x86_64, and the
"platform keys" are files on this host. Use it for development and tests only.

It takes the argv QEMU would get (as sevsup's buildQemuArgv returns it), applies QEMU 7.2's
start-up checks as on a real SEV host (cbitpos 47, reduced-phys-bits 1), computes the launch
measurement from the real firmware, kernel-hashes table and (SEV-ES) VMSAs, then runs QEMU
without the SEV parts and serves the QMP monitor socket itself, answering the SEV commands
(query-sev, query-sev-launch-measure, query-sev-capabilities, sev-inject-launch-secret,
query-sev-attestation-report, HMP "info sev") as QEMU 7.2 does on SEV hardware, and blocking
migration and snapshots after the first cont.

SEV-SNP: a -object sev-snp-guest (linked by confidential-guest-support) is simulated as QEMU 10
on an SNP host: its property checks, accelerator init (cbitpos, reduced-phys-bits, the policy bits
KVM takes, SMM refused), -bios only (a non-zero multiple of 64 KiB, with the SEV info block) and
the kernel-hashes area, with QEMU 10's texts; query-sev answers sev-type sev-snp (launch-update
until the first cont, then running); at the first cont the SNP launch digest is computed over the
firmware, its metadata sections (the kernel-hashes page among them) and one VMSA per vCPU, and an
ID block is checked as SNP_LAUNCH_FINISH does (signature, digest, policy: QEMU then exits 1 before
the guest runs). The simulated SNP host runs with SMT off, firmware API as below.

Signed SNP reports (SIMULATED): the state directory's snp/ holds a simulated ARK -> ASK -> VCEK
chain (RSA-PSS ARK/ASK, P-384 VCEK with AMD's extensions, every subject labelled SIMULATED;
ark.pem ask.pem vcek.pem as snpguest lays them out), the VCEK's key and the chip id, all 0600,
made once (two RSA-4096 keys: seconds). A guest under TCG cannot ask the PSP itself, so the sim
answers a sim-only QMP request for a running SNP guest (real QEMU has no such command):
  {"execute":"x-sevsup-sim-snp-report","arguments":{"report-data":"<128 hex digits|base64>"}}
with {"data": base64 of the 0x4A0-byte version 3 report at VMPL 0 (the launch digest, host data,
ID key and author key digests, policy, family/image id, guest SVN, the platform's TCB and chip
id), "ark", "ask", "vcek": PEM}. AMD's pinned roots never verify it; pass its ark.pem as --ark.

Options (before the first QEMU argument):
  --sim-qemu PATH          QEMU binary to run (default qemu-system-x86_64)
  --sim-tik FILE           16-byte TIK (default: generated, written 0600 as sim-tik.bin next to
                           the monitor socket)
  --sim-tek FILE           16-byte TEK (default: generated, sim-tek.bin)
  --sim-fault NAME         wrong-policy | sev-disabled | no-measurement | crash-on-cont | slow-qmp
                           (may be repeated)
  --sim-delay-ms N         slow-qmp delay per reply (default ${DEFAULT_SLOW_QMP_DELAY_MS})
  --sim-reply-shape V      7.2 (flat query-sev, default) or 9.1 (with sev-type)
  --sim-accel tcg|kvm      accelerator of the QEMU underneath (default tcg)
  --sim-api-major N, --sim-api-minor N, --sim-build-id N
                           simulated SEV firmware version (default ${SIM_PLATFORM_DEFAULTS.apiMajor}.${SIM_PLATFORM_DEFAULTS.apiMinor} build ${SIM_PLATFORM_DEFAULTS.buildId})
  --sim-state-dir DIR      the sim's state directory (default $SEVSUP_SIM_STATE_DIR, else
                           $XDG_STATE_HOME/sevsup-sim, i.e. ~/.local/state/sevsup-sim)
  --sim-init-snp-platform  make the simulated SNP platform's chain in the state directory now
                           (install time; otherwise the first SNP guest makes it) and exit
  --sim-help               this text

What the simulated secure processor returns: query-sev-capabilities gives structurally valid
PDH/PEK/OCA/CEK certificates and a chip id made from fixed fake keys (they verify against no AMD
root); query-sev-attestation-report gives the 208-byte SEV report (mnonce, the real launch digest,
the applied policy) with a random signature. Failed PSP commands print ret=-5 (-EIO), as on
hardware; a launch secret whose MAC does not verify is refused with fw_error=11 (Bad measurement).

Files next to the monitor socket: sim-tik.bin, sim-tek.bin (when generated), sim-status.json
(state, policy, injected secrets' GUIDs and lengths, cont count) and .sevsup-sim-PID-*/ (the real
QEMU's monitor; removed on exit, or by the next sim if this one was SIGKILLed). The sim writes its
own pid to -pidfile; QEMU runs in the sim's process group and is killed when the sim dies (setpriv
--pdeathsig), so killing the sim's process group stops both.
`;
