// The guest owner's attestation service in `sevsup demo`: a private CA and a server certificate
// for localhost made with the openssl CLI, a bearer token for the demo's host, an owner.conf with
// the SEV guest's reference inputs, keys and secret, and `sevsup owner serve` as a real process on
// loopback. Owns: those files and that process's start (the demo's clean-up stops it).
// Must not: print key, token or secret bytes (only file names), or listen beyond 127.0.0.1.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.js';
import { command, type Ctx } from './context.js';
import { DEMO_PATHS } from './paths.js';
import { Background, pollUntil } from './processes.js';

/** The demo daemon's identity to the owner (daemon config `host-id`). */
export const DEMO_HOST_ID = 'demo-host';
/** `owner serve` loads the owner's inputs (hashing the firmware and kernel) before it listens. */
const LISTEN_TIMEOUT_MS = 60_000;

export interface OwnerGuest {
  /** The VMs of the demo's host this owner runs with these inputs (one `[guest HOST/VM]` section each). */
  readonly vms: readonly string[];
  readonly firmware: string;
  readonly kernel: string;
  readonly initrd: string;
  readonly cmdline: string;
  readonly policy: string;
  readonly tik: string;
  readonly tek: string;
  /** `ALIAS:FILE` or `GUID:FILE`, as `sevsup secret build --secret` takes it. */
  readonly secret: string;
}

export interface OwnerService {
  readonly process: Background;
  readonly conf: string;
  readonly confText: string;
  /** What the VM config says to reach it (attest-url, attest-ca, attest-token-file). */
  readonly vmKeys: readonly string[];
}

async function openssl(ctx: Ctx, args: readonly string[]): Promise<void> {
  const r = await command(ctx, DEMO_PATHS.openssl, args);
  if (r.code !== 0) throw new SupervisorError('SUP_ERR_INTERNAL', `openssl ${args[0] ?? ''} failed: ${r.stderr.trim()}`);
}

/** Make the owner's PKI and config in `dir`, start `sevsup owner serve`, and wait until it listens. */
export async function startOwnerService(ctx: Ctx, dir: string, guest: OwnerGuest): Promise<OwnerService> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = { key: join(dir, 'owner-ca.key'), crt: join(dir, 'owner-ca.crt') };
  const server = { key: join(dir, 'server.key'), csr: join(dir, 'server.csr'), crt: join(dir, 'server.crt') };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(ctx, ['req', '-x509', ...ec, '-keyout', ca.key, '-out', ca.crt, '-days', '2', '-subj', '/CN=sevsup demo owner CA']);
  await openssl(ctx, ['req', ...ec, '-keyout', server.key, '-out', server.csr, '-subj', '/CN=localhost']);
  const ext = join(dir, 'server.ext');
  await writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await openssl(ctx, [
    'x509',
    '-req',
    '-in',
    server.csr,
    '-CA',
    ca.crt,
    '-CAkey',
    ca.key,
    '-set_serial',
    '2',
    '-days',
    '2',
    '-extfile',
    ext,
    '-out',
    server.crt,
  ]);
  const tokenFile = join(dir, 'host.token');
  await writeFile(tokenFile, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600 });

  const conf = join(dir, 'owner.conf');
  const confText = [
    '# the owner service of `sevsup demo`: TLS on loopback, the demo host known by its bearer token',
    'listen: 127.0.0.1:0',
    `tls-cert: ${server.crt}`,
    `tls-key: ${server.key}`,
    `token: ${DEMO_HOST_ID}:${tokenFile}`,
    `state-file: ${join(dir, 'answered.json')}`,
    ...guest.vms.flatMap((vm) => [
      '',
      `[guest ${DEMO_HOST_ID}/${vm}]`,
      'type: sev',
      `firmware: ${guest.firmware}`,
      `kernel: ${guest.kernel}`,
      `initrd: ${guest.initrd}`,
      `cmdline: ${guest.cmdline}`,
      `policy: ${guest.policy}`,
      `tik: ${guest.tik}`,
      `tek: ${guest.tek}`,
      `secret: ${guest.secret}`,
    ]),
    '',
  ].join('\n');
  await writeFile(conf, confText, { mode: 0o600 });
  const service = new Background(process.execPath, [DEMO_PATHS.sevsup, 'owner', 'serve', '--config', conf]);
  ctx.ownerService = service;
  const port = await pollUntil(
    () => {
      if (!service.running) throw new SupervisorError('SUP_ERR_INTERNAL', `sevsup owner serve exited:\n${service.stderr.trim()}`);
      const m = /"address":"127\.0\.0\.1:(\d+)"/.exec(service.stdout);
      return m === null ? undefined : Number(m[1]);
    },
    { timeoutMs: LISTEN_TIMEOUT_MS, intervalMs: 100, signal: ctx.signal },
  );
  if (port === undefined) {
    if (ctx.signal.aborted) throw new SupervisorError('SUP_ERR_USAGE', 'interrupted');
    throw new SupervisorError('SUP_ERR_INTERNAL', `sevsup owner serve did not listen within ${LISTEN_TIMEOUT_MS / 1000} s`);
  }
  return {
    process: service,
    conf,
    confText,
    vmKeys: ['attest: relay', `attest-url: https://localhost:${port}/attest`, `attest-ca: ${ca.crt}`, `attest-token-file: ${tokenFile}`],
  };
}
