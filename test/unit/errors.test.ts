/** The one table of error codes (src/kit/errors.ts) and the statuses the APIs answer with. */
import t from 'tap';
import { AirgapError, ERROR_STATUS, asErrorCode, httpStatusOf, isErrorCode } from '../../src/kit/errors.js';

t.test('every code has a client or server error status', async (t) => {
  for (const [code, status] of Object.entries(ERROR_STATUS)) {
    t.match(code, /^AG_[A-Z_]+$/, code);
    t.ok(status >= 400 && status <= 599, `${code} → ${status}`);
  }
});

t.test('statuses follow the kind of failure', async (t) => {
  t.equal(httpStatusOf('AG_USAGE'), 400);
  t.equal(httpStatusOf('AG_NOT_FOUND'), 404);
  t.equal(httpStatusOf('AG_UNSIGNED'), 422, 'a refused .bin is unprocessable, not a server error');
  t.equal(httpStatusOf('AG_DOWNGRADE'), 409);
  t.equal(httpStatusOf('AG_NO_SPACE'), 507);
  t.equal(httpStatusOf('AG_REGISTRY_UNREACHABLE'), 502);
  t.equal(httpStatusOf('AG_SOMETHING_NEW'), 500, 'a code the table does not know is a server error');
});

t.test('codes read back from JSON or the database', async (t) => {
  t.ok(isErrorCode('AG_TRUNCATED'));
  t.notOk(isErrorCode('toString'), 'no inherited property counts');
  t.notOk(isErrorCode(42));
  t.equal(asErrorCode('AG_TRUNCATED', 'AG_DAEMON_ERROR'), 'AG_TRUNCATED');
  t.equal(asErrorCode('SOMETHING', 'AG_DAEMON_ERROR'), 'AG_DAEMON_ERROR');
  t.equal(new AirgapError(asErrorCode(undefined, 'AG_IMPORT_FAILED'), 'x').code, 'AG_IMPORT_FAILED');
});
