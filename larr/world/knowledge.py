"""General text about the world, written by the simulator.

The default backbone LLM is first pretrained on this text so that it plays the
part of a general-purpose LLM: it knows which dishes are hot or cold, spicy,
breakfast food or late-night food, which regions they come from and what
weather feels like -- but nothing about particular shops or users, which is
what continual pretraining adds.
"""

from __future__ import annotations

from larr.world import catalog as cat
from larr.world.scene import TEMPERATURE_BANDS

_TEMP_WORDS = {"hot": "served hot", "warm": "served warm", "cold": "served cold"}


def _dish_sentences(dish: cat.Dish, cuisine: cat.Cuisine) -> list[str]:
    out = [f"{dish.name} is {dish.description}.", f"{dish.name} is {_TEMP_WORDS[dish.temp]}."]
    if dish.soup:
        out.append(f"{dish.name} is a soup dish that warms you up.")
    if dish.spicy >= 0.7:
        out.append(f"{dish.name} is very spicy.")
    elif dish.spicy >= 0.4:
        out.append(f"{dish.name} is a little spicy.")
    if dish.breakfast:
        out.append(f"people eat {dish.name} for breakfast.")
    if dish.late_night:
        out.append(f"{dish.name} is a popular late night snack.")
    if dish.sweet:
        out.append(f"{dish.name} tastes sweet.")
    if dish.temp == "cold":
        out.append(f"on a hot day {dish.name} is refreshing.")
    if dish.temp == "hot" and dish.soup:
        out.append(f"on a cold or rainy day {dish.name} is comforting.")
    if cuisine.region:
        out.append(f"{dish.name} is a specialty of {cuisine.region}.")
    return out


def general_text(region_names: list[str]) -> list[str]:
    """One document per dish, per region and per weather/temperature word."""
    docs: list[str] = []
    for cuisine in cat.CUISINES:
        for dish in cuisine.dishes:
            docs.append(" ".join(_dish_sentences(dish, cuisine)))
        docs.append(f"{cuisine.label} food includes " + ", ".join(d.name for d in cuisine.dishes) + ".")
    for region in cat.REGIONS:
        if region.name not in region_names:
            continue
        local = [c for c in cat.CUISINES if c.region == region.name]
        text = f"{region.name} has districts such as {', '.join(region.districts[:4])}."
        if local:
            text += f" Visitors to {region.name} like to try local food such as " + ", ".join(
                d.name for d in local[0].dishes[:3]) + "."
        climate = "hot" if region.mean_temp_c >= 28 else "cold" if region.mean_temp_c <= 10 else "mild"
        text += f" The climate of {region.name} is {climate}."
        docs.append(text)
    docs += [
        "when it is sunny and hot people want cold drinks, ice cream and cold noodles.",
        "when it rains people stay in and order hot soup, congee and hot pot.",
        "heavy rain makes people order delivery from nearby shops.",
        "snow and freezing weather make hot stew and hot pot feel good.",
        "breakfast is eaten in the early morning: congee, buns, soy milk and pancakes.",
        "late at night people order barbecue skewers, fried chicken and noodle soup.",
        "travellers like to try the local specialties of the city they visit.",
    ]
    for _, band in TEMPERATURE_BANDS:
        docs.append(f"a {band} day calls for " + ("cold food and iced drinks." if band in ("warm", "hot", "scorching")
                                                  else "hot food and warm soup."))
    return docs
