/**
 * The console's content lists over the database: the releases and the artifacts of each
 * kind, a page at a time (store/releases.ts pages them in SQL). `airgap serve` hands
 * these to the console API (server.ts); the pagination test and bench/api.ts use them
 * on a seeded database.
 */
import { AirgapError } from '../../kit/errors.js';
import type { ConsoleOperations } from '../http/operations.js';
import type { Db } from '../store/db.js';
import { artifactListPage, currentRelease, getRelease, releaseSummary, releaseSummaryPage } from '../store/releases.js';

/** ConsoleOperations' `releases`, `release` and `artifacts` on `db`. */
export function contentLists(db: Db): Pick<ConsoleOperations, 'releases' | 'release' | 'artifacts'> {
  return {
    releases: (page) => ({ current: currentRelease(db)?.version ?? null, ...releaseSummaryPage(db, page) }),
    release: (version) => releaseSummary(db, version),
    artifacts: (query) => {
      if (query.version !== undefined && !getRelease(db, query.version)) {
        throw new AirgapError('AG_NOT_FOUND', `there is no release ${query.version} on the box`, { hint: 'GET /api/v1/releases lists the releases; leave release out to list every release' });
      }
      return artifactListPage(db, query);
    },
  };
}
