// Package statusrec notes the status an http.Handler answers with, for
// the counts and limits that depend on it, where another handler writes
// the answer.
package statusrec

import "net/http"

// Recorder passes everything to its ResponseWriter and keeps the first
// status written (200 when the body comes without one; 0 when nothing was
// written). It unwraps, so http.ResponseController reaches the real
// writer.
type Recorder struct {
	http.ResponseWriter
	Code int
}

func (s *Recorder) WriteHeader(code int) {
	if s.Code == 0 {
		s.Code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *Recorder) Write(b []byte) (int, error) {
	if s.Code == 0 {
		s.Code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *Recorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
