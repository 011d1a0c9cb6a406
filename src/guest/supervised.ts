// "A supervised guest": the one way sevsup puts a guest under supervision, for `sevsup run` and
// the daemon alike. The fail-closed lifecycle (preflight, spawn, checks, record, hold, resume), and
// in front of QEMU's monitor, once sevsup's own session is up and before any check, the filtering
// proxy, which decides each command from the lifecycle's state (DecideContext: held, SEV, the VM's
// qmp-allow / qmp-deny). The caller adds what is its own: the control API target, events, metrics.
// On the hardware platform an SEV-SNP guest also needs a QEMU with `sev-snp-guest` (>= 9.1): checked
// first in the preflight step (guest/qemu-check.ts, which `sevsup showcmd` uses too), so `sevsup run`
// and the daemon refuse an older QEMU alike before any spawn.
// An `attest: relay` guest's credentials are checked in the same step, before any spawn.
// Owns: that wiring. Must not: know the launch order (vm/lifecycle.ts) or decide a command (proxy/).
import type { VmSpec } from '../config/vm-spec.js';
import type { Logger } from '../log.js';
import type { VmPaths } from '../process/run-dir.js';
import { buildQemuArgv } from '../qemu/argv.js';
import type { DecideContext } from '../proxy/decide.js';
import type { QmpProxy } from '../proxy/proxy-server.js';
import { readCredentials, relayHold, type RelayEnv } from '../relay/relay.js';
import { VmLifecycle } from '../vm/lifecycle.js';
import { preflightWithQemuCheck } from './qemu-check.js';
import { DEFAULT_LIFECYCLE_DEPS, type LifecycleDeps, type LifecycleOptions } from '../vm/lifecycle-options.js';

export interface SupervisedGuestOptions extends Omit<LifecycleOptions, 'onMonitor' | 'paths' | 'logger' | 'argv'> {
  /** The guest's prepared run dir (its proxy socket among them). */
  readonly paths: VmPaths;
  readonly logger: Logger;
  /** Group that may use the proxy socket (numeric gid). */
  readonly proxyGid?: number;
  /** Called on every proxy refusal (metrics). */
  readonly onRefusal?: (reason: string) => void;
  /** A previous supervision of the same guest, whose proxy must be gone before this one binds. */
  readonly replaces?: SupervisedGuest | null;
  /** For `attest: relay`: the host's id and the metrics hooks (the daemon's). */
  readonly relayEnv?: RelayEnv;
}

export interface SupervisedGuest {
  readonly lifecycle: VmLifecycle;
  /** Close the filtering proxy (no-op when none is up). */
  closeProxy(): Promise<void>;
}

/** What the proxy decides each command from: read at each decision, so a state change applies to the next. */
export function decideContext(lifecycle: VmLifecycle): DecideContext {
  const { spec } = lifecycle;
  return { vmState: lifecycle.state, held: lifecycle.resumeLocked, sev: lifecycle.sev, allow: spec.qmpAllow, deny: spec.qmpDeny };
}

/**
 * The preflight with `attest: relay`'s credentials checked first (attest-ca, attest-cert/attest-key
 * or attest-token-file: there, not open to others, parseable): a guest that could never ask its
 * owner fails before QEMU is spawned, with the config key and file named. The relay reads them
 * again at hold time (they may change in between).
 */
export function preflightWithRelayCheck(preflight: LifecycleDeps['preflight']): LifecycleDeps['preflight'] {
  return async (spec: VmSpec) => {
    if (spec.attest === 'relay' && spec.relay !== undefined) await readCredentials(spec.relay);
    return preflight(spec);
  };
}

export function superviseGuest(o: SupervisedGuestOptions): SupervisedGuest {
  const { paths, proxyGid, onRefusal, replaces, relayEnv, ...lifecycleOptions } = o;
  // Loaded while QEMU starts, awaited once its monitor is up (keeps it off the launch's critical path).
  const proxyModule = import('../proxy/proxy-server.js');
  proxyModule.catch(() => undefined); // awaited (and its error reported) in onMonitor
  let proxy: QmpProxy | undefined;
  const lifecycle: VmLifecycle = new VmLifecycle({
    ...lifecycleOptions,
    paths,
    argv: buildQemuArgv,
    deps: {
      ...lifecycleOptions.deps,
      preflight: preflightWithRelayCheck(
        preflightWithQemuCheck(o.platform, o.binary, lifecycleOptions.deps?.preflight ?? DEFAULT_LIFECYCLE_DEPS.preflight),
      ),
    },
    // attest: relay asks the owner's service over HTTPS (src/relay/); vm/ only calls the hook.
    relay: lifecycleOptions.relay ?? ((hold) => relayHold(hold, relayEnv)),
    // Everyone but sevsup reaches the guest's monitor only through the filtering proxy.
    onMonitor: async (qmp) => {
      const { startQmpProxy } = await proxyModule;
      await replaces?.closeProxy();
      await proxy?.close();
      proxy = await startQmpProxy({
        socketPath: paths.proxySocket,
        vm: lifecycle.vm,
        upstream: qmp,
        context: () => decideContext(lifecycle),
        logger: o.logger,
        ...(proxyGid === undefined ? {} : { gid: proxyGid }),
        ...(onRefusal === undefined ? {} : { onRefusal }),
      });
    },
  });
  return { lifecycle, closeProxy: async () => proxy?.close() };
}
