//! The GPU's power draw on Apple silicon, read without root through IOReport.
//!
//! Why: GPU time per process (the AGX user clients, [`super::agx`]) says that the GPU is
//! busy, not whether it works or spins; on NVIDIA the board's power tells the two apart
//! (docs/gpu.md). Apple silicon publishes no power limit, but its energy counters give the
//! draw itself, as evidence.
//!
//! What: `/usr/lib/libIOReport.dylib`, a private library with no published header, the one
//! `powermetrics` and macmon (<https://github.com/vladkens/macmon>) read. The channels of the
//! `Energy Model` group are subscribed to, sampled twice an interval apart, and the delta of
//! the GPU's energy channel(s) over the measured interval becomes average milliwatts. The
//! choice of channels, the units and the arithmetic live in [`super::energy`], tested on
//! every OS; this module only makes the calls. No root and no entitlement are needed (macmon
//! and others read the same as a normal user).
//!
//! Not run on a Mac yet: this is type-checked and linted for both Apple targets from Linux
//! (`scripts/check-macos`), never linked or executed. The signatures below follow what
//! open-source readers declare; Apple documents none of them.

use std::ffi::c_void;
use std::ptr;
use std::time::{Duration, Instant};

use core_foundation::array::CFArray;
use core_foundation::base::{CFType, CFTypeRef, TCFType};
use core_foundation::dictionary::{
    CFDictionary, CFDictionaryRef, CFMutableDictionary, CFMutableDictionaryRef,
};
use core_foundation::string::{CFString, CFStringRef};

use super::energy::{self, ENERGY_GROUP, EnergyDelta};

// The subscription is a CF object (decompiled Apple binaries type it `__IOReportSubscriptionCF *`
// and release it with `CFRelease`), so it is held as a `CFType` and released on drop.
#[link(name = "IOReport", kind = "dylib")]
unsafe extern "C" {
    /// The channels of `group` (and `subgroup`, null for all), as a dictionary whose
    /// `IOReportChannels` key holds an array of channel dictionaries. Copy rule: +1.
    fn IOReportCopyChannelsInGroup(
        group: CFStringRef,
        subgroup: CFStringRef,
        a: u64,
        b: u64,
        c: u64,
    ) -> CFDictionaryRef;
    /// A subscription to `desired`; `subscribed` receives the channels actually subscribed
    /// (+1, the create rule). Returns null on failure.
    fn IOReportCreateSubscription(
        allocator: *const c_void,
        desired: CFMutableDictionaryRef,
        subscribed: *mut CFMutableDictionaryRef,
        channel_id: u64,
        options: CFTypeRef,
    ) -> CFTypeRef;
    /// One sample of the subscribed channels' counters. Create rule: +1.
    fn IOReportCreateSamples(
        subscription: CFTypeRef,
        subscribed: CFMutableDictionaryRef,
        options: CFTypeRef,
    ) -> CFDictionaryRef;
    /// `current - previous` per channel, in the same layout as a sample. Create rule: +1.
    fn IOReportCreateSamplesDelta(
        previous: CFDictionaryRef,
        current: CFDictionaryRef,
        options: CFTypeRef,
    ) -> CFDictionaryRef;
    /// Get rule (+0): the strings belong to the channel dictionary.
    fn IOReportChannelGetGroup(channel: CFDictionaryRef) -> CFStringRef;
    fn IOReportChannelGetChannelName(channel: CFDictionaryRef) -> CFStringRef;
    fn IOReportChannelGetUnitLabel(channel: CFDictionaryRef) -> CFStringRef;
    /// The value of a simple (integer) channel. The second argument is passed as 0 by every
    /// reader seen: macmon declares it an index, one reconstructed header an error
    /// out-pointer; 0 (null) is right under both readings.
    fn IOReportSimpleGetIntegerValue(channel: CFDictionaryRef, zero: i32) -> i64;
}

/// The GPU's average power over `interval` (the caller gives e.g. 200 ms), in milliwatts:
/// two samples of the `Energy Model` channels `interval` apart, the GPU channels' delta over
/// the time measured between them. Blocks the calling thread for `interval`.
pub fn gpu_power_mw(interval: Duration) -> Result<u32, String> {
    let group = CFString::from_static_string(ENERGY_GROUP);
    // SAFETY: `group` is a valid CFString and a null subgroup asks for the whole group; the
    // result follows the copy rule, so it is wrapped once (after the null check).
    let channels = unsafe {
        let r = IOReportCopyChannelsInGroup(group.as_concrete_TypeRef(), ptr::null(), 0, 0, 0);
        if r.is_null() {
            return Err(format!("IOReport has no {ENERGY_GROUP:?} channel group"));
        }
        CFDictionary::<*const c_void, *const c_void>::wrap_under_create_rule(r)
    };
    // The subscription takes a mutable dictionary: a copy, released on drop.
    let desired = CFMutableDictionary::from(&channels);
    let mut subscribed_ref: CFMutableDictionaryRef = ptr::null_mut();
    // SAFETY: `desired` is a live mutable dictionary of channels and `subscribed_ref` a
    // writable out-pointer; a null allocator and options are what every reader passes. Both
    // results follow the create rule and are wrapped once each, after their null checks.
    let (subscription, subscribed) = unsafe {
        let s = IOReportCreateSubscription(
            ptr::null(),
            desired.as_concrete_TypeRef(),
            &mut subscribed_ref,
            0,
            ptr::null(),
        );
        let subscribed = (!subscribed_ref.is_null()).then(|| {
            CFMutableDictionary::<*const c_void, *const c_void>::wrap_under_create_rule(
                subscribed_ref,
            )
        });
        if s.is_null() {
            return Err("IOReportCreateSubscription failed".to_string());
        }
        (CFType::wrap_under_create_rule(s), subscribed)
    };
    // Sample what was subscribed (as decompiled Apple callers do), or what was asked for.
    let sampled = subscribed.as_ref().unwrap_or(&desired);
    let sample = || {
        // SAFETY: `subscription` and `sampled` are live for this whole function; the sample
        // follows the create rule and is wrapped once, after the null check.
        let r = unsafe {
            IOReportCreateSamples(
                subscription.as_CFTypeRef(),
                sampled.as_concrete_TypeRef(),
                ptr::null(),
            )
        };
        let at = Instant::now();
        if r.is_null() {
            return Err("IOReportCreateSamples failed".to_string());
        }
        // SAFETY: non-null and +1 (the create rule): wrapped once, released on drop.
        let owned =
            unsafe { CFDictionary::<*const c_void, *const c_void>::wrap_under_create_rule(r) };
        Ok((owned, at))
    };
    let (first, t0) = sample()?;
    std::thread::sleep(interval);
    let (second, t1) = sample()?;
    // SAFETY: both samples are live dictionaries of the same subscription; the delta follows
    // the create rule and is wrapped once, after the null check.
    let delta = unsafe {
        let r = IOReportCreateSamplesDelta(
            first.as_concrete_TypeRef(),
            second.as_concrete_TypeRef(),
            ptr::null(),
        );
        if r.is_null() {
            return Err("IOReportCreateSamplesDelta failed".to_string());
        }
        CFDictionary::<CFString, CFType>::wrap_under_create_rule(r)
    };
    let deltas = gpu_deltas(&delta)?;
    energy::gpu_power_mw(&deltas, t1.duration_since(t0).as_secs_f64())
}

/// The GPU channels of a sample delta, with their values. Other channels are skipped before
/// their value is read (only channels chosen by name are read as simple integers).
fn gpu_deltas(delta: &CFDictionary<CFString, CFType>) -> Result<Vec<EnergyDelta>, String> {
    let key = CFString::from_static_string("IOReportChannels");
    let items: CFArray = delta
        .find(&key)
        .and_then(|v| v.downcast::<CFArray>())
        .ok_or("the IOReport sample has no IOReportChannels array")?;
    let mut out = Vec::new();
    for item in items.iter() {
        let channel = *item as CFDictionaryRef;
        // SAFETY: each element of `IOReportChannels` is a channel dictionary, live while
        // `items` is; the getters return strings owned by it (+0), copied out by `text`.
        let (group, name) = unsafe {
            (
                text(IOReportChannelGetGroup(channel)),
                text(IOReportChannelGetChannelName(channel)),
            )
        };
        if energy::gpu_channel(&group, &name).is_none() {
            continue;
        }
        // SAFETY: as above; the channel was chosen by name as an energy counter, a simple
        // integer channel, whose value the call only reads.
        let (unit, value) = unsafe {
            (
                text(IOReportChannelGetUnitLabel(channel)),
                IOReportSimpleGetIntegerValue(channel, 0),
            )
        };
        out.push(EnergyDelta {
            group,
            name,
            unit,
            delta: value,
        });
    }
    Ok(out)
}

/// A string an IOReport getter returned (+0, owned by its channel), copied; empty for null.
///
/// # Safety
/// `r` is null or a valid CFString that stays alive for the call.
unsafe fn text(r: CFStringRef) -> String {
    if r.is_null() {
        return String::new();
    }
    // SAFETY: non-null and valid (the caller's promise); the get rule retains it for the
    // wrapper, which releases it on drop.
    unsafe { CFString::wrap_under_get_rule(r) }.to_string()
}
