/** The appliance's credentials: one row per account, made once and kept. */
import type { Db } from './db.js';

export interface StoredCredential {
  name: string;
  username: string;
  password: string;
  passwordHash: string;
  createdAt: string;
}

export function getCredential(db: Db, name: string): StoredCredential | undefined {
  return db
    .prepare('SELECT name, username, password, password_hash AS passwordHash, created_at AS createdAt FROM credentials WHERE name = ?')
    .get(name) as StoredCredential | undefined;
}

/** Inserts `credential` unless one with its name exists; returns the stored one either way. */
export function insertCredentialOnce(db: Db, credential: StoredCredential): StoredCredential {
  db.prepare('INSERT INTO credentials (name, username, password, password_hash, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING').run(
    credential.name,
    credential.username,
    credential.password,
    credential.passwordHash,
    credential.createdAt,
  );
  return getCredential(db, credential.name)!;
}
