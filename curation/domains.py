"""The Mathematics Subject Classification 2020 (MSC2020) top level: the domains s1's diversity rule samples over.

    MSC2020["11"]             -> "Number theory"                       (all 63 two-digit classes, official titles)
    S1_CODES                  -> the 61 codes s1 classified into       (MSC2020 without 00 and 01, REFERENCE §1)
    domain_codes("s1")        -> S1_CODES; domain_codes("msc2020") -> all 63
    domain_name("11")         -> "Number theory"; refuses a code that is not an MSC2020 class

Sources. The 63 codes and titles are MSC2020's as published by Mathematical Reviews and zbMATH Open
(msc2020.org); the primary page could not be fetched here, so they were checked against three independent copies of
the list (two of them citing mathscinet.ams.org/mathscinet/msc/msc2020.html) and against s1's own
``data/msc.json`` (simplescaling/s1, commit d92268f), which holds exactly 61 entries: every MSC2020 code except 00
(General and overarching topics) and 01 (History and biography). s1's file words three titles differently: 33
carries the scope note "(33-XX deals with the properties of functions as functions)", and 91 / 94 keep the MSC2010
titles "Game theory, economics, social and behavioral sciences" / "Information and communication, circuits"; the
copies disagree on those two, and the MSC2020 wording is used here. Torch-free, no I/O.
"""

from __future__ import annotations

from engine.errors import TTScaleError

# code -> official MSC2020 title, in the published order (63 classes)
MSC2020: dict[str, str] = {
    "00": "General and overarching topics; collections",
    "01": "History and biography",
    "03": "Mathematical logic and foundations",
    "05": "Combinatorics",
    "06": "Order, lattices, ordered algebraic structures",
    "08": "General algebraic systems",
    "11": "Number theory",
    "12": "Field theory and polynomials",
    "13": "Commutative algebra",
    "14": "Algebraic geometry",
    "15": "Linear and multilinear algebra; matrix theory",
    "16": "Associative rings and algebras",
    "17": "Nonassociative rings and algebras",
    "18": "Category theory; homological algebra",
    "19": "K-theory",
    "20": "Group theory and generalizations",
    "22": "Topological groups, Lie groups",
    "26": "Real functions",
    "28": "Measure and integration",
    "30": "Functions of a complex variable",
    "31": "Potential theory",
    "32": "Several complex variables and analytic spaces",
    "33": "Special functions",
    "34": "Ordinary differential equations",
    "35": "Partial differential equations",
    "37": "Dynamical systems and ergodic theory",
    "39": "Difference and functional equations",
    "40": "Sequences, series, summability",
    "41": "Approximations and expansions",
    "42": "Harmonic analysis on Euclidean spaces",
    "43": "Abstract harmonic analysis",
    "44": "Integral transforms, operational calculus",
    "45": "Integral equations",
    "46": "Functional analysis",
    "47": "Operator theory",
    "49": "Calculus of variations and optimal control; optimization",
    "51": "Geometry",
    "52": "Convex and discrete geometry",
    "53": "Differential geometry",
    "54": "General topology",
    "55": "Algebraic topology",
    "57": "Manifolds and cell complexes",
    "58": "Global analysis, analysis on manifolds",
    "60": "Probability theory and stochastic processes",
    "62": "Statistics",
    "65": "Numerical analysis",
    "68": "Computer science",
    "70": "Mechanics of particles and systems",
    "74": "Mechanics of deformable solids",
    "76": "Fluid mechanics",
    "78": "Optics, electromagnetic theory",
    "80": "Classical thermodynamics, heat transfer",
    "81": "Quantum theory",
    "82": "Statistical mechanics, structure of matter",
    "83": "Relativity and gravitational theory",
    "85": "Astronomy and astrophysics",
    "86": "Geophysics",
    "90": "Operations research, mathematical programming",
    "91": "Game theory, economics, finance, and other social and behavioral sciences",
    "92": "Biology and other natural sciences",
    "93": "Systems theory; control",
    "94": "Information and communication theory, circuits",
    "97": "Mathematics education",
}

# s1's data/msc.json: every class but the two that hold no problems of their own (REFERENCE §1: "61 two-digit codes")
S1_CODES: tuple[str, ...] = tuple(c for c in MSC2020 if c not in ("00", "01"))

CODE_SETS = {"s1": S1_CODES, "msc2020": tuple(MSC2020)}


def domain_codes(which: str = "s1") -> tuple[str, ...]:
    """The codes a classifier may answer: ``"s1"`` (61, s1's list) or ``"msc2020"`` (all 63). Refuses other names."""
    try:
        return CODE_SETS[which]
    except (KeyError, TypeError):
        raise TTScaleError(f"domain code set {which!r} is unknown; use one of {', '.join(CODE_SETS)}") from None


def domain_name(code: str) -> str:
    """The MSC2020 title of a two-digit code. Refuses a code that is not an MSC2020 top-level class."""
    if code not in MSC2020:
        raise TTScaleError(f"domain code {code!r} is not an MSC2020 top-level class; use a two-digit code such as '11' "
                           "(curation.domains.MSC2020 lists all 63)")
    return MSC2020[code]


def domain_record(code: str, method: str, detail: str = "") -> dict:
    """What the diversity stage stores in ``metadata["domain"]``: code, title, how it was found and the evidence.
    Refuses what :func:`domain_name` refuses."""
    return {"code": code, "name": domain_name(code), "method": method, "detail": detail}


# ------------------------------------------------------------------------------------------ subject names -> codes
# The offline labels: a dataset's own subject field, normalised (lower case, "&" -> "and", spaces collapsed).
# MSC has no class for school mathematics' topics, so each MATH subject goes to the research class its problems
# exercise: school arithmetic is MSC 97F (Mathematics education), equations and polynomials 12 (12D/12E),
# precalculus' trigonometry and elementary functions 26 (26A09), counting 05, plane and solid geometry 51 (51M).
SUBJECT_CODES: dict[str, str] = {
    # MATH (Hendrycks et al.) and MATH-500
    "prealgebra": "97",
    "algebra": "12",
    "intermediate algebra": "12",
    "precalculus": "26",
    "number theory": "11",
    "geometry": "51",
    "counting and probability": "05",
    # other common subject / domain names
    "arithmetic": "97",
    "combinatorics": "05",
    "discrete mathematics": "05",
    "graph theory": "05",
    "probability": "60",
    "statistics": "62",
    "calculus": "26",
    "analysis": "26",
    "real analysis": "26",
    "trigonometry": "26",
    "inequalities": "26",
    "complex analysis": "30",
    "linear algebra": "15",
    "abstract algebra": "20",
    "group theory": "20",
    "differential equations": "34",
    "ordinary differential equations": "34",
    "partial differential equations": "35",
    "functional equations": "39",
    "sequences and series": "40",
    "topology": "54",
    "differential geometry": "53",
    "logic": "03",
    "set theory": "03",
    "numerical analysis": "65",
    "computer science": "68",
    "cs": "68",
    "coding": "68",
    "physics": "70",
    "mechanics": "70",
    "electromagnetism": "78",
    "optics": "78",
    "thermodynamics": "80",
    "quantum mechanics": "81",
    "astronomy": "85",
    "chemistry": "92",
    "biology": "92",
    "economics": "91",
    "game theory": "91",
    "operations research": "90",
    "optimization": "49",
}


def subject_code(subject: str) -> str | None:
    """The MSC code :data:`SUBJECT_CODES` gives a subject name (case, ``&`` and spacing ignored); None when the
    name is not in the table. Refuses nothing."""
    if not isinstance(subject, str):
        return None
    key = " ".join(subject.lower().replace("&", " and ").replace("_", " ").split())
    return SUBJECT_CODES.get(key)


# ------------------------------------------------------------------------------------------ keyword table
# The offline text classifier's evidence (curation.diversity.KeywordClassifier): per code, regular expressions
# searched in the lower-cased question, each with a weight; a code's score is the sum of the weights of its patterns
# that occur (once each). Written from the MSC scope of each class; covers the classes that competition and
# science questions fall into, not all 63.
KEYWORDS: dict[str, tuple[tuple[str, float], ...]] = {
    "11": ((r"\bprimes?\b", 2), (r"\bdivisors?\b", 2), (r"\bdivisible\b", 2), (r"\bremainder\b", 2), (r"\bmodulo\b", 3),
           (r"\\pmod|\\bmod|\\mod\b", 3), (r"\bgcd\b|greatest common (divisor|factor)", 2),
           (r"\blcm\b|least common multiple", 2), (r"\bcongruen", 3), (r"units digit|ones digit", 2), (r"\bdigits?\b", 1), (r"terminating decimal", 2),
           (r"\bbase (two|three|four|five|six|seven|eight|nine|ten|\d+)\b|in base", 3), (r"_\{\d+\}", 2), (r"perfect squares?", 1),
           (r"\bintegers\b|\bpositive integer\b", 0.5), (r"relatively prime|coprime", 2), (r"\bfactorials?\b", 1),
           (r"repeating decimal", 2)),
    "05": ((r"how many (different |distinct )?(ways|arrangements|paths|committees|subsets|sequences|outfits)", 3),
           (r"\barrange(ment)?s?\b", 2), (r"\bpermutations?\b", 2), (r"\bcombinations?\b", 2), (r"\\[dt]?binom", 2), (r"expansion of", 2),
           (r"\bchoose\b", 1), (r"\bcommittee\b", 2), (r"\bgraphs? (with|on) \d+ vertices|\bvertices\b.*\bedges\b", 2),
           (r"\bcolou?rings?\b", 1), (r"\bsubsets?\b", 1), (r"distinguishable|indistinguishable", 2)),
    "60": ((r"\bprobability\b", 3), (r"\bat random\b|\brandomly\b", 2), (r"\bdice\b|\bdie\b", 2),
           (r"\bcoins?\b.*\b(flip|toss)|\b(flip|toss)\w*\b.*\bcoins?\b", 2), (r"expected value", 3),
           (r"random variable", 3), (r"markov|brownian|stochastic", 3)),
    "62": ((r"\bmedian\b", 1), (r"standard deviation|\bvariance\b", 2), (r"\bregression\b|\bestimator\b", 3),
           (r"confidence interval|hypothesis test", 3)),
    "51": ((r"\btriangles?\b|\\triangle", 2), (r"\bcircles?\b", 2), (r"\\angle|\bangles?\b", 2),
           (r"\bpolygons?\b|\bhexagon|\bpentagon|\boctagon", 2), (r"\bradius\b|\bdiameter\b|\bchord\b", 2),
           (r"\bperimeter\b", 2), (r"\barea\b", 1), (r"\brectangle|\bsquare\b(?! root)|\btrapezoid|\bparallelogram|\brhombus", 1),
           (r"\bparallel\b|\bperpendicular\b", 1), (r"\binscribed\b|\bcircumscribed\b", 2), (r"\bhypotenuse\b", 2),
           (r"\bvolume\b", 1), (r"\bcubes?\b|\bspheres?\b|\bcylinders?\b|\bcones?\b|\bpyramid|\bprism", 1),
           (r"\[asy\]", 1), (r"\\overline", 1), (r"\bdegrees?\b|\^\\circ|\^\{\\circ\}", 1)),
    "26": ((r"\\sin|\\cos|\\tan|\\cot|\\sec|\\csc", 3), (r"\\arcsin|\\arccos|\\arctan", 3), (r"\bradians?\b", 2),
           (r"trigonometr", 3), (r"\\int\b|\bintegral\b", 2), (r"\bderivative\b|\\frac\{d\w?\}\{d[a-z]\}", 2), (r"\\lim\b|\blimit\b", 2),
           (r"\bcontinuous\b|\bdifferentiable\b", 2), (r"\binequality\b", 1), (r"\bminimum value\b|\bmaximum value\b", 1),
           (r"\\log|\blogarithm", 1), (r"\be\^", 1), (r"\\theta", 1), (r"(polar|spherical|cylindrical|rectangular) coordinates", 2)),
    "12": ((r"\bpolynomials?\b", 3), (r"\broots?\b", 2), (r"\bquadratic\b", 2), (r"\bcoefficients?\b", 2),
           (r"\bmonic\b", 2), (r"\bcubic\b", 2), (r"\bsolve\b|\bsolutions?\b", 1), (r"\bequations?\b", 1),
           (r"x\^2|x\^3", 1), (r"\bcomplex numbers?\b", 1), (r"\bfactor(ed|ization)?\b", 1), (r"\bsolve for\b|system of equations", 2),
           (r"\bexpression\b", 1), (r"\b[fg]\(x\)", 1), (r"\bslope\b|\b[xy]-intercept", 1), (r"\bvalue of \$?[a-z]\$?\b", 1),
           (r"varies (inversely|directly)|(inversely|directly) proportional", 1), (r"\bpowers? of\b|\bexponents?\b", 1)),
    "15": ((r"\bmatri(x|ces)\b|pmatrix|bmatrix", 3), (r"\bvectors?\b|\\mathbf", 2), (r"\bdeterminant\b|\\det\b", 3),
           (r"\beigen", 3), (r"linear (transformation|map)", 3), (r"dot product|cross product", 2), (r"\bprojection\b", 2)),
    "30": ((r"analytic function|holomorphic|meromorphic|\bresidues?\b|contour integral", 3),),
    "40": ((r"\bsequence\b", 1), (r"\bseries\b", 2), (r"\\sum", 1), (r"arithmetic (sequence|progression)", 2),
           (r"geometric (sequence|progression|series)", 2), (r"\bconverge", 2), (r"\\infty", 1)),
    "39": ((r"functional equation|for all real numbers \$?x\$? and \$?y", 3), (r"recurrence|recursive", 2)),
    "97": ((r"\\\$\s*\d|\bdollars?\b|\bcents?\b", 2), (r"\bpercent\b|\\%", 2), (r"\baverage\b|\bmean\b", 1),
           (r"\bsimplify\b", 1), (r"\bfractions?\b|common fraction|mixed number", 1), (r"\bdecimal\b", 1),
           (r"nearest (tenth|hundredth|whole|integer)", 1), (r"\bratio\b", 1), (r"\bmiles?\b|\bhours?\b|\bminutes?\b", 1),
           (r"\bstudents?\b|\bteachers?\b", 1), (r"\bcost\b|\bprice\b|\bpays?\b|\bbuys?\b", 1)),
    "20": ((r"\bgroups?\b.*\b(order|subgroup|isomorphi|homomorphi)", 3), (r"\bsubgroups?\b", 3), (r"\bsymmetric group\b", 3)),
    "13": ((r"\bideals?\b|\bcommutative ring", 3),),
    "03": ((r"\bset theory\b|\bcardinality\b|\bcountabl|\bdecidab|\baxiom", 2), (r"\blogic(al)?\b", 1)),
    "54": ((r"\btopolog|\bcompact\b|\bhausdorff\b|\bopen sets?\b", 3),),
    "34": ((r"differential equation|\by''|\by'\b|\\frac\{dy\}\{dx\}", 3),),
    "35": ((r"partial differential|\\partial", 3), (r"heat equation|wave equation|laplace equation", 3)),
    "49": ((r"\bminimi[sz]e\b|\bmaximi[sz]e\b|\boptimal\b|\boptimi[sz]", 1), (r"calculus of variations|lagrange multiplier", 3)),
    "65": ((r"\bnumerical(ly)?\b|newton'?s method|\biterations?\b|\bapproximat", 2),),
    "68": ((r"\balgorithm|\bprogram\b|\bcomplexity\b|\bstring of length|\barray of\b|\binput\b.*\boutput\b", 2),
           (r"\bcode\b|\bfunction that returns|\btime limit\b", 2)),
    "70": ((r"\bvelocity\b|\baccelerat|\bmomentum\b|\bfriction\b|\bprojectile\b|\bpendulum\b|\bnewton\b|\bkinetic energy", 3),
           (r"\bm/s\b|\bkg\b|\bforce\b|\bmass\b", 1)),
    "76": ((r"\bfluid|\bviscos|\bflow rate|\bbuoyan", 3),),
    "78": ((r"\belectric|\bmagnetic|\bcharge\b|\bcapacit|\bvoltage|\bcurrent\b|\blens\b|\brefract|\bwavelength", 3),),
    "80": ((r"\bthermodynami|\bheat\b|\bentropy\b|\btemperature\b|\bideal gas", 3),),
    "81": ((r"\bquantum|\bschr[oö]dinger|\bhamiltonian\b|\bspin\b|\bphotons?\b|\belectrons?\b", 3),),
    "82": ((r"\bpartition function\b|\bboltzmann|\bstatistical mechanics|\bcrystal|\blattice\b.*\batoms?\b", 3),),
    "83": ((r"\brelativ|\bspacetime|\bblack hole|\blorentz", 3),),
    "85": ((r"\bstars?\b|\bgalax|\bplanets?\b|\borbit|\btelescope|\bastronom|\bsolar\b", 3),),
    "92": ((r"\bcells?\b|\bproteins?\b|\bgenes?\b|\bdna\b|\benzyme|\bspecies\b|\bmolecul|\breaction\b|\bcompound\b|\bacid\b",
            3), (r"\bchemi|\bmol\b|\batoms?\b|\bbonds?\b", 2)),
    "91": ((r"\beconom|\bmarket\b|\butility\b|\bnash equilibrium|\bplayers?\b.*\bstrateg|\bauction", 3),),
    "90": ((r"linear programming|\bscheduling\b|shortest path|\bnetwork flow", 3),),
    "94": ((r"\bentropy of|\binformation theory|\bbits?\b|\bcodewords?\b|\bchannel\b|\bcircuits?\b", 2),),
}
