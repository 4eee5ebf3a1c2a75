package postgres

import (
	"context"

	"github.com/keygate/keygate"
)

// CreateSession stores a dashboard session; ENOTFOUND when the user does
// not exist, ECONFLICT when the id is already stored.
func (s *Store) CreateSession(ctx context.Context, sess *keygate.Session) error {
	sess.CreatedAt = s.createdAt(sess.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`,
		sess.ID, sess.UserID, sess.CSRFToken, sess.CreatedAt, ts(sess.ExpiresAt))
	if err := dbError(err); keygate.ErrorCode(err) == keygate.ENOTFOUND {
		return keygate.Errorf(keygate.ENOTFOUND, "User not found.")
	} else if err != nil {
		return err
	}
	return nil
}

// FindSession returns ENOTFOUND for unknown and expired sessions alike.
func (s *Store) FindSession(ctx context.Context, id string) (*keygate.Session, error) {
	var sess keygate.Session
	err := s.retryRead(ctx, func() error {
		return s.queryRow(ctx, `SELECT id, user_id, csrf_token, created_at, expires_at
			FROM sessions WHERE id = $1 AND expires_at > $2`, id, ts(s.now())).
			Scan(&sess.ID, &sess.UserID, &sess.CSRFToken, &sess.CreatedAt, &sess.ExpiresAt)
	})
	if err != nil {
		return nil, notFound(err, "Session")
	}
	sess.CreatedAt = sess.CreatedAt.UTC()
	sess.ExpiresAt = sess.ExpiresAt.UTC()
	return &sess, nil
}

// DeleteSession ends a session. Ending one that is already gone is not an
// error: logging out twice is harmless.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	return dbError(err)
}

// DeleteUserSessions ends every session of a user, e.g. after a password
// change. Expired sessions are removed at the same time.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) error {
	_, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = $1 OR expires_at <= $2`,
		userID, ts(s.now()))
	return dbError(err)
}
