// Implementation of `sevsup owner serve|check|session`: load the owner config (attestation/owner-load.ts),
// run the service until SIGTERM/SIGINT with readiness for systemd, or print what the config
// resolves to, or write a simulated launch session from the owner's keys.
// Must not: decide anything (attestation/owner-decide.ts), print keys, tokens or secrets.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadTransportKeys } from '../../attestation/inputs.js';
import { loadOwnerService } from '../../attestation/owner-load.js';
import { SupervisorError } from '../../errors.js';
import { encodeSimSession } from '../../sev/sim-session.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { describeIoError } from '../../util/io-error.js';
import type { OwnerConfigCliOptions, OwnerSessionCliOptions } from '../commands/owner.js';
import { printJson } from '../output.js';

export async function runOwnerServe(o: OwnerConfigCliOptions): Promise<void> {
  // The service's own modules (https, pino, prom-client) load only for `serve`: check and session stay lean.
  const [{ createOwnerMetrics }, { AnsweredStore }, { startOwnerServer }, { createLogger }, { createNotifier }] = await Promise.all([
    import('../../attestation/owner-metrics.js'),
    import('../../attestation/owner-replay.js'),
    import('../../attestation/owner-server.js'),
    import('../../log.js'),
    import('../../process/sd-notify.js'),
  ]);
  const svc = await loadOwnerService(o.config);
  const store = await AnsweredStore.open(svc.config.stateFile, { maxPerGuest: svc.config.maxAnsweredPerGuest });
  const logger = createLogger({ base: { component: 'owner' } });
  const notifier = createNotifier(process.env, { logger });
  const server = await startOwnerServer(svc, { store, logger, metrics: createOwnerMetrics() });
  const auth = [...(svc.tls.ca === null ? [] : ['mtls']), ...(svc.tokens.size === 0 ? [] : ['token'])];
  const where = `${server.address.host.includes(':') ? `[${server.address.host}]` : server.address.host}:${server.address.port}`;
  logger.info({ address: where, path: svc.config.path, guests: svc.guests.size, auth, answered: store.size }, 'owner service listening');
  await notifier.ready(`serving ${svc.guests.size} guest${svc.guests.size === 1 ? '' : 's'} on ${where}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info({ signal }, 'owner service stopping');
  await notifier.stopping();
  await server.close();
  logger.info('owner service stopped');
  logger.flush();
}

export async function runOwnerCheck(o: OwnerConfigCliOptions): Promise<void> {
  const svc = await loadOwnerService(o.config);
  const guests = [...svc.guests.values()].map((g) =>
    g.type === 'snp'
      ? { host: g.host, vm: g.vm, type: g.type, expectedDigest: g.digest.toString('hex'), policy: `0x${g.policy.toString(16)}` }
      : {
          host: g.host,
          vm: g.vm,
          type: g.type,
          expectedDigest: g.digest.toString('hex'),
          policies: g.policies.map((p) => `0x${p.toString(16)}`),
          answer: g.secrets.length === 0 ? 'approve' : `inject (${g.secrets.length} secret${g.secrets.length === 1 ? '' : 's'})`,
        },
  );
  const listen = `${svc.config.listen.host}:${svc.config.listen.port}${svc.config.path}`;
  if (o.json === true) {
    printJson({ config: svc.config.file, listen, hosts: { mtls: svc.tls.ca !== null, tokens: svc.tokens.size }, guests });
    return;
  }
  const lines = [`${svc.config.file}: OK, listens on ${listen}`];
  for (const g of guests)
    lines.push(`  [guest ${g.host}/${g.vm}] ${g.type}: expected digest ${g.expectedDigest}${'answer' in g ? `, answers ${g.answer}` : ''}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export async function runOwnerSession(o: OwnerSessionCliOptions): Promise<void> {
  const keys = await loadTransportKeys({ tik: o.tik, tek: o.tek }, { needTek: true });
  if (keys.tek === null) throw new SupervisorError('SUP_ERR_INTERNAL', 'loadTransportKeys returned no TEK');
  const files = encodeSimSession({ tik: keys.tik, tek: keys.tek });
  try {
    await mkdir(o.out, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(o.out, 'session'), files.session, { mode: 0o600, overwrite: true });
    await writeFileAtomic(join(o.out, 'dh-cert'), files.dhCert, { mode: 0o600, overwrite: true });
  } catch (error: unknown) {
    throw new SupervisorError('SUP_ERR_OUTPUT_WRITE', `cannot write the simulated session to ${o.out}: ${describeIoError(error)}`, {
      details: { path: o.out },
      cause: error,
    });
  }
  process.stdout.write(
    [
      `wrote a SIMULATED launch session (for platform: sim only) to ${join(o.out, 'dh-cert')} and ${join(o.out, 'session')}`,
      `give it to the guest: launch: dh-cert=${join(o.out, 'dh-cert')},session=${join(o.out, 'session')}`,
      '',
    ].join('\n'),
  );
}
