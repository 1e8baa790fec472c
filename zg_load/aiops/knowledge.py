"""The reference knowledge set: the facts that task outputs claim and checks verify.

Fifty stable facts, keyed by a snake_case name whose suffix gives the unit where there
is one. The set is fixed: checks and conflict resolution against it are deterministic,
so tests and scenarios can expect exact values.
"""

from __future__ import annotations

Fact = str | int | float | bool

FACTS: dict[str, Fact] = {
    "boiling_point_water_c": 100,
    "freezing_point_water_c": 0,
    "speed_of_light_km_s": 299_792,
    "earth_moon_distance_km": 384_400,
    "earth_radius_km": 6371,
    "moon_radius_km": 1737,
    "sun_surface_temp_k": 5772,
    "gravity_earth_m_s2": 9.81,
    "planets_in_solar_system": 8,
    "largest_planet": "Jupiter",
    "closest_planet_to_sun": "Mercury",
    "hours_per_day": 24,
    "days_per_leap_year": 366,
    "minutes_per_hour": 60,
    "bits_per_byte": 8,
    "http_ok_status": 200,
    "http_not_found_status": 404,
    "http_too_many_requests_status": 429,
    "tcp_handshake_steps": 3,
    "ipv4_address_bits": 32,
    "ipv6_address_bits": 128,
    "sha256_digest_bits": 256,
    "default_https_port": 443,
    "default_ssh_port": 22,
    "python_creator": "Guido van Rossum",
    "linux_creator": "Linus Torvalds",
    "capital_france": "Paris",
    "capital_germany": "Berlin",
    "capital_japan": "Tokyo",
    "capital_italy": "Rome",
    "capital_spain": "Madrid",
    "capital_canada": "Ottawa",
    "capital_australia": "Canberra",
    "capital_brazil": "Brasilia",
    "largest_ocean": "Pacific",
    "longest_river": "Nile",
    "highest_mountain": "Everest",
    "everest_height_m": 8849,
    "continents_count": 7,
    "water_formula": "H2O",
    "atomic_number_carbon": 6,
    "atomic_number_oxygen": 8,
    "atomic_number_gold": 79,
    "chemical_symbol_gold": "Au",
    "chemical_symbol_iron": "Fe",
    "human_chromosome_pairs": 23,
    "human_heart_chambers": 4,
    "pi_approx": 3.14159,
    "euler_number_approx": 2.71828,
    "prime_after_ten": 11,
}


def is_number(value: object) -> bool:
    """A JSON number (a bool is not one)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(a: object, b: object, tolerance: float) -> bool:
    """Numbers agree within relative `tolerance`; strings ignoring case and edge spaces."""
    if is_number(a) and is_number(b):
        assert isinstance(a, int | float) and isinstance(b, int | float)
        return abs(a - b) <= tolerance * max(abs(a), abs(b))
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return type(a) is type(b) and a == b
