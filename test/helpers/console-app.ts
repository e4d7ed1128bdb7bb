/**
 * The appliance's public HTTPS app (file repository, console API) as the tests and the API
 * bench build it: over a state dir's layout and PKI, with the console operations given,
 * logging nothing.
 */
import { pino } from 'pino';
import { buildPublicApp } from '../../src/appliance/http/app.js';
import type { ConsoleOperations } from '../../src/appliance/http/api.js';
import type { StateLayout } from '../../src/appliance/config/state-layout.js';
import type { TlsMaterial } from '../../src/appliance/security/pki.js';

/** buildPublicApp on `layout` with `tls` and `api`; the repository account is `airgap-repo`. The caller closes it. */
export function publicAppFor(layout: StateLayout, tls: TlsMaterial, api: ConsoleOperations): ReturnType<typeof buildPublicApp> {
  return buildPublicApp({
    log: pino({ level: 'silent' }),
    repoDir: layout.repoDir,
    repositoryCredential: () => ({ username: 'airgap-repo', password: 'x' }),
    caPem: () => tls.caPem,
    tls: { key: tls.keyPem, cert: tls.certPem },
    api,
  });
}
