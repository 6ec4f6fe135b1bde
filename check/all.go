package check

import "regexp"

// Options configures the checks All returns.
type Options struct {
	// Inventory serves the online checks; nil (offline) skips them.
	Inventory *Inventory
	// MaxImageSize is ImageSize's limit in bytes (0: DefaultMaxImageSize).
	MaxImageSize int64
	// FloatingTags matches tags refused in new entries besides latest.
	FloatingTags *regexp.Regexp
}

// All returns every check, in the order they run.
func All(opts Options) []Check {
	return []Check{
		Validation{},
		ImageRemoval{},
		TagMove{},
		TagConflict{},
		DestinationRemoval{},
		SourcePresence{Inventory: opts.Inventory},
		ImageSize{Inventory: opts.Inventory, Max: opts.MaxImageSize},
		FloatingTags{Pattern: opts.FloatingTags},
		Format{},
	}
}
