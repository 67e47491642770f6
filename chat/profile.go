package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/switchboard/switchboard/protocol"
)

// Profiles: what a user shows of themselves (the design's user service):
// a display name, an "about" line and a photo, an image asset of theirs.
// Any signed-in user may read any profile, and so download its photo
// (WhatsApp's default, "everyone"). Stored as the state record pf/<user>.

// Limits of a profile's fields, in bytes of UTF-8.
const (
	MaxProfileNameBytes  = 128
	MaxProfileAboutBytes = 512
	// MaxProfileUsers is the most profiles one read returns.
	MaxProfileUsers = 256
)

// Profile is a user's profile as clients see it.
type Profile struct {
	User    string `json:"user"`
	Name    string `json:"name,omitempty"`
	About   string `json:"about,omitempty"`
	Photo   string `json:"photo,omitempty"`   // an image asset id
	Updated int64  `json:"updated,omitempty"` // unix ms of the last change; absent: never set
}

// ProfileUpdate is a KindProfile request's change: each field that is not
// nil replaces the profile's; an empty Photo removes the photo.
type ProfileUpdate struct {
	Name, About, Photo *string
}

func profileKey(user string) string { return "pf/" + user }

// profile runs a KindProfile request: set From's profile (r.Profile), or
// read the profiles of r.Members. Both answer with the profiles.
func (s *Service) profile(ctx context.Context, b *building, r *Request) Result {
	if r.Profile == nil {
		return s.readProfiles(ctx, r.Members)
	}
	u := r.Profile
	p, err := s.getProfile(ctx, r.From)
	if err != nil {
		return Result{Err: err}
	}
	old := p
	if u.Name != nil {
		if err := profileText("name", *u.Name, MaxProfileNameBytes); err != nil {
			return Result{Err: err}
		}
		p.Name = *u.Name
	}
	if u.About != nil {
		if err := profileText("about", *u.About, MaxProfileAboutBytes); err != nil {
			return Result{Err: err}
		}
		p.About = *u.About
	}
	if u.Photo != nil && *u.Photo != p.Photo {
		if *u.Photo != "" {
			if err := s.pin(ctx, b, *u.Photo, r.From, grantEveryone); err != nil {
				return Result{Err: err}
			}
		}
		if p.Photo != "" {
			if err := s.unpin(ctx, b, p.Photo, grantEveryone); err != nil {
				b.fatal = err
				return Result{Err: err}
			}
		}
		p.Photo = *u.Photo
	}
	if p == old && old.Updated != 0 {
		v, err := json.Marshal(p)
		return Result{Data: append(append([]byte(nil), `,"profile":`...), v...), Err: err} // nothing changes
	}
	p.Updated = b.now.UnixMilli()
	v, err := json.Marshal(p)
	if err != nil {
		return Result{Err: err}
	}
	s.setState(b, profileKey(r.From), v)
	if b.events {
		b.analytics(r.From, NewEvent("profile.updated", r.From, p.Updated))
	}
	return Result{Data: append(append([]byte(nil), `,"profile":`...), v...)}
}

func (s *Service) getProfile(ctx context.Context, user string) (Profile, error) {
	p := Profile{User: user}
	v, found, err := s.getState(ctx, profileKey(user))
	if err != nil || !found {
		return p, err
	}
	if err := json.Unmarshal(v, &p); err != nil {
		return p, fmt.Errorf("switchboard: profile of %q: %w", user, err)
	}
	p.User = user
	return p, nil
}

// readProfiles answers with ,"profiles":[…], one per user asked, in the
// order asked; a user who never set one has only "user".
func (s *Service) readProfiles(ctx context.Context, users [][]byte) Result {
	if len(users) == 0 || len(users) > MaxProfileUsers {
		return Result{Err: badRequest(fmt.Sprintf(`"users" must name 1 to %d users`, MaxProfileUsers))}
	}
	out := make([]Profile, 0, len(users))
	for _, u := range users {
		p, err := s.getProfile(ctx, string(u))
		if err != nil {
			return Result{Err: err}
		}
		out = append(out, p)
	}
	v, err := json.Marshal(out)
	if err != nil {
		return Result{Err: err}
	}
	return Result{Data: append(append([]byte(nil), `,"profiles":`...), v...)}
}

// profileText checks a profile's name or about line: UTF-8 within limit,
// no control characters (C0, DEL, C1; the about line may hold newlines)
// and no bidirectional embeddings or overrides (U+202A–U+202E), which
// would let a name show as another's.
func profileText(field, v string, limit int) error {
	if len(v) > limit || !utf8.ValidString(v) {
		return &protocol.Error{Code: protocol.CodeBadRequest,
			Message: fmt.Sprintf("%q must be at most %d bytes of UTF-8", field, limit)}
	}
	for _, r := range v {
		if (unicode.IsControl(r) && !(field == "about" && r == '\n')) || (r >= 0x202a && r <= 0x202e) {
			return &protocol.Error{Code: protocol.CodeBadRequest,
				Message: fmt.Sprintf("%q must not hold control characters or bidirectional overrides", field)}
		}
	}
	return nil
}
