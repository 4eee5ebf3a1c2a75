package keygate

// TooManyTokensError is the refusal when an organization already holds max
// active tokens for an API. Every store returns this one message so the
// dashboard, the management API and the CLI say the same thing.
func TooManyTokensError(max int) *Error {
	noun := "tokens"
	if max == 1 {
		noun = "token"
	}
	return Errorf(ECONFLICT,
		"This organization already has %d active %s for this API, the most allowed. Delete a token before creating a new one.",
		max, noun)
}
