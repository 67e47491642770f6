package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Profiles and group icons (protocol "Profiles", "Groups"). Each is a
// Request (see there): it works only while connected (ErrNotConnected),
// and a refusal is a *ServerError with the protocol's code. All are safe
// for concurrent use and must not be called from the Handler.
//
// A profile photo and a group icon are images this user uploaded (Upload,
// UploadFile): any signed-in user may download a profile photo, a group's
// members its icon (Download).

// Limits of a profile (the server refuses more with CodeBadRequest).
const (
	MaxProfileNameBytes  = 128 // UTF-8, no control characters
	MaxProfileAboutBytes = 512 // UTF-8, no control characters but newlines
	maxProfilesPerFrame  = 256
)

// Profile is what a user shows of themselves.
type Profile struct {
	User    string
	Name    string    // "" if never set
	About   string    // may hold newlines
	Photo   string    // an image's asset id (Download fetches it); "" for none
	Updated time.Time // the last change; zero if the user never set a profile
}

// ProfileUpdate is a change of this user's profile: each field that is not
// nil replaces the profile's (the others stay as they are); an empty Photo
// removes the photo. new("text") makes a field.
type ProfileUpdate struct {
	Name  *string
	About *string
	Photo *string // the asset id of an image this user uploaded, or ""
}

// wireProfile is a profile as the server sends it.
type wireProfile struct {
	User    string `json:"user"`
	Name    string `json:"name"`
	About   string `json:"about"`
	Photo   string `json:"photo"`
	Updated int64  `json:"updated"`
}

func (p wireProfile) profile() Profile {
	return Profile{User: p.User, Name: p.Name, About: p.About, Photo: p.Photo, Updated: msTime(p.Updated)}
}

// SetProfile changes this user's profile as u says and returns it whole.
// A photo that is not an image this user uploaded is refused
// (CodeNotFound, or CodeBadRequest for a file that is not an image); a
// name or about over its limit, or with control characters, with
// CodeBadRequest. A refused update changes nothing.
func (c *Client) SetProfile(ctx context.Context, u ProfileUpdate) (Profile, error) {
	fields := map[string]any{}
	if u.Name != nil {
		fields["name"] = *u.Name
	}
	if u.About != nil {
		fields["about"] = *u.About
	}
	if u.Photo != nil {
		fields["photo"] = *u.Photo
	}
	if len(fields) == 0 {
		return Profile{}, errors.New("client: SetProfile: nothing to change")
	}
	var ack struct {
		Profile *wireProfile `json:"profile"`
	}
	if err := c.call(ctx, "profile.set", fields, &ack); err != nil {
		return Profile{}, err
	}
	if ack.Profile == nil {
		return Profile{}, errors.New("client: profile.set: the ack has no profile")
	}
	return ack.Profile.profile(), nil
}

// Profiles returns the profiles of users, in the order asked (one that
// never set a profile has only User). Any signed-in user may read any
// profile. Many users take several requests, 256 at a time.
func (c *Client) Profiles(ctx context.Context, users ...string) ([]Profile, error) {
	out := make([]Profile, 0, len(users))
	for chunk := range slices.Chunk(users, maxProfilesPerFrame) {
		var ack struct {
			Profiles []wireProfile `json:"profiles"`
		}
		if err := c.call(ctx, "profile.get", map[string]any{"users": chunk}, &ack); err != nil {
			return nil, err
		}
		if len(ack.Profiles) != len(chunk) {
			return nil, fmt.Errorf("client: profile.get: %d profiles for %d users", len(ack.Profiles), len(chunk))
		}
		for _, p := range ack.Profiles {
			out = append(out, p.profile())
		}
	}
	return out, nil
}

// SetGroupIcon makes assetID, an image this user uploaded, group's icon;
// "" removes the icon (admins only: CodeNotAdmin). Every member gets a
// GroupEvent GroupIconChanged and may download the icon.
func (c *Client) SetGroupIcon(ctx context.Context, group, assetID string) error {
	return c.call(ctx, "group.icon", map[string]any{"group": group, "icon": assetID}, nil)
}
