//! Reading a structured or batch body in one pass, borrowing from it: each event object
//! becomes its members in the order they came, each value as its JSON text. Data is then
//! kept exactly as it came in, and an attribute is decoded from its own text only.
//! Whatever stands where an object or an array was expected is named, not refused, so
//! that the caller can say what it found.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// An event object's members, each value as its JSON text.
pub(super) type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

/// A JSON value where a CloudEvent object is expected.
pub(super) enum Item<'a> {
    Object(Members<'a>),
    /// Anything else.
    Other(JsonType),
}

/// A JSON value where a batch, an array of CloudEvents, is expected.
pub(super) enum Batch<'a> {
    Array(Vec<Item<'a>>),
    /// Anything else.
    Other(JsonType),
}

/// What a JSON value is, as a refusal names it ("found an object").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonType {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    /// The type of `value`, from its first character.
    pub(super) fn of(value: &RawValue) -> Self {
        match value.get().as_bytes().first() {
            Some(b'{') => JsonType::Object,
            Some(b'[') => JsonType::Array,
            Some(b'"') => JsonType::String,
            Some(b't' | b'f') => JsonType::Boolean,
            Some(b'n') => JsonType::Null,
            _ => JsonType::Number,
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            JsonType::Null => "null",
            JsonType::Boolean => "a boolean",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        })
    }
}

/// A value read as the shape it should have, or named when it has another.
trait Shaped<'de>: Sized {
    fn other(found: JsonType) -> Self;

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::other(JsonType::Object))
    }

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::other(JsonType::Array))
    }
}

impl<'de> Shaped<'de> for Item<'de> {
    fn other(found: JsonType) -> Self {
        Item::Other(found)
    }

    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(MemberName(name)) = map.next_key()? {
            members.push((name, map.next_value::<&'de RawValue>()?));
        }
        Ok(Item::Object(members))
    }
}

impl<'de> Shaped<'de> for Batch<'de> {
    fn other(found: JsonType) -> Self {
        Batch::Other(found)
    }

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Batch::Array(items))
    }
}

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

impl<'de> Deserialize<'de> for Batch<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ShapeVisitor(PhantomData))
    }
}

struct ShapeVisitor<T>(PhantomData<T>);

impl<'de, T: Shaped<'de>> Visitor<'de> for ShapeVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<T, E> {
        Ok(T::other(JsonType::Null))
    }

    fn visit_bool<E>(self, _: bool) -> Result<T, E> {
        Ok(T::other(JsonType::Boolean))
    }

    fn visit_i64<E>(self, _: i64) -> Result<T, E> {
        Ok(T::other(JsonType::Number))
    }

    fn visit_u64<E>(self, _: u64) -> Result<T, E> {
        Ok(T::other(JsonType::Number))
    }

    fn visit_f64<E>(self, _: f64) -> Result<T, E> {
        Ok(T::other(JsonType::Number))
    }

    fn visit_str<E>(self, _: &str) -> Result<T, E> {
        Ok(T::other(JsonType::String))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::from_seq(seq)
    }
}

/// A member's name, borrowed from the body unless it holds escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(MemberNameVisitor)
    }
}

struct MemberNameVisitor;

impl<'de> Visitor<'de> for MemberNameVisitor {
    type Value = MemberName<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(MemberName(Cow::Borrowed(name)))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(MemberName(Cow::Owned(name.to_owned())))
    }
}
