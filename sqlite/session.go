package sqlite

import (
	"context"

	"github.com/keygate/keygate"
)

// CreateSession stores a dashboard session; ENOTFOUND when the user does
// not exist, ECONFLICT when the id is already stored.
func (s *Store) CreateSession(ctx context.Context, sess *keygate.Session) error {
	sess.CreatedAt = s.createdAt(sess.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`,
		sess.ID, sess.UserID, sess.CSRFToken, millis(sess.CreatedAt), millis(sess.ExpiresAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "User not found.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindSession returns ENOTFOUND for unknown and expired sessions alike.
func (s *Store) FindSession(ctx context.Context, id string) (*keygate.Session, error) {
	var (
		sess                 keygate.Session
		createdAt, expiresAt int64
	)
	err := s.queryRow(ctx, `SELECT id, user_id, csrf_token, created_at, expires_at
		FROM sessions WHERE id = ? AND expires_at > ?`, id, millis(s.now())).
		Scan(&sess.ID, &sess.UserID, &sess.CSRFToken, &createdAt, &expiresAt)
	if err != nil {
		return nil, notFound(err, "Session")
	}
	sess.CreatedAt = fromMillis(createdAt)
	sess.ExpiresAt = fromMillis(expiresAt)
	return &sess, nil
}

// DeleteSession ends a session. Ending one that is already gone is not an
// error: logging out twice is harmless.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	return dbError(err)
}

// DeleteUserSessions ends every session of a user, e.g. after a password
// change. Expired sessions are removed at the same time.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ? OR expires_at <= ?`,
		userID, millis(s.now()))
	return dbError(err)
}
