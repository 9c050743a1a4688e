//! Enums carried as one byte on the wire, each variant's byte (and name) written once.

/// Declares a `#[repr(u8)]` enum with the given byte per variant (`variant as u8` reads
/// it) and `TryFrom<u8>`, whose error is the unknown byte. Variants written
/// `Variant = byte => "name",` also give the enum `name(self) -> &'static str`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $byte:literal => $name:literal, )+
        }
    ) => {
        wire_enum! {
            $(#[$meta])*
            $vis enum $enum {
                $( $(#[$variant_meta])* $variant = $byte, )+
            }
        }

        impl $enum {
            /// The variant's name.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )+
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $byte:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        $vis enum $enum {
            $( $(#[$variant_meta])* $variant = $byte, )+
        }

        impl TryFrom<u8> for $enum {
            type Error = u8;

            fn try_from(byte: u8) -> ::core::result::Result<Self, u8> {
                match byte {
                    $( $byte => ::core::result::Result::Ok(Self::$variant), )+
                    other => ::core::result::Result::Err(other),
                }
            }
        }
    };
}

pub(crate) use wire_enum;

#[cfg(test)]
mod tests {
    wire_enum! {
        /// A test enum.
        enum Colour {
            Red = 1 => "red",
            Green = 0x7F => "green",
        }
    }

    #[test]
    fn bytes_and_names_round_trip() {
        for c in [Colour::Red, Colour::Green] {
            assert_eq!(Colour::try_from(c as u8), Ok(c));
        }
        assert_eq!(Colour::Green as u8, 0x7F);
        assert_eq!(Colour::Green.name(), "green");
        assert_eq!(Colour::try_from(2), Err(2));
    }
}
