"""The confirmation mail's fixed phrases, per language.

What the admin configures (purpose names, legal-basis explanations, source names) comes from
config/purposes.yaml; what is here is the mail's own wording. Every language has every key:
``tests/unit/test_mail_rendering.py`` checks that. Placeholders use ``str.format`` names
(``{name}``, ``{company}``, ``{date}``) and are filled in before the templates see the text, so
the HTML template escapes the filled-in result.

To add a language: add a dict to ``TEXTS`` and a month list and date pattern to ``DATES``.
"""

from collections.abc import Mapping
from datetime import date

TEXTS: Mapping[str, Mapping[str, str]] = {
    "en": {
        "subject": "How we handle your data",
        "greeting": "Dear {name},",
        "greeting_anonymous": "Hello,",
        "intro_registered": "We have registered your contact details in our customer records.",
        "intro_registered_company": "{company} has registered your contact details in its customer records.",
        "intro_rights": "Under the EU General Data Protection Regulation (GDPR) you have the right to know "
                        "why we keep your data, on what legal basis, and where the data came from.",
        "heading_recorded": "What we record and why",
        "recorded_intro": "We keep your data for these purposes:",
        "nothing_recorded": "We have not recorded any purpose for your data yet.",
        "label_legal_basis": "Legal basis",
        "label_source": "Where your data came from",
        "heading_withdrawn": "Consents you have withdrawn",
        "withdrawn_note": "You have withdrawn your consent. We no longer use your data for this purpose.",
        "heading_not_given": "Only with your consent",
        "not_given_intro": "You have not given your consent to the following, so we do not do it. "
                           "If you would like to, you can give your consent on your personal page:",
        "heading_manage": "Manage your consents and subscriptions",
        "manage_text": "On your personal page you can see your consents, give or withdraw them and "
                       "choose which mailings you receive, at any time.",
        "button": "Open your personal page",
        "link_expiry": "This link is personal and valid until {date}. Please do not forward this email.",
        "closing": "Kind regards,",
        "footer_auto": "This email was sent automatically because your contact details were registered. "
                       "You do not need to reply.",
    },
    "nb": {
        "subject": "Slik behandler vi opplysningene dine",
        "greeting": "Hei {name},",
        "greeting_anonymous": "Hei,",
        "intro_registered": "Vi har registrert kontaktopplysningene dine i kunderegisteret vårt.",
        "intro_registered_company": "{company} har registrert kontaktopplysningene dine i kunderegisteret sitt.",
        "intro_rights": "Etter EUs personvernforordning (GDPR) har du rett til å vite hvorfor vi lagrer "
                        "opplysningene dine, hvilket rettslig grunnlag vi har, og hvor opplysningene kommer fra.",
        "heading_recorded": "Hva vi registrerer, og hvorfor",
        "recorded_intro": "Vi lagrer opplysningene dine til disse formålene:",
        "nothing_recorded": "Vi har foreløpig ikke registrert noe formål for opplysningene dine.",
        "label_legal_basis": "Rettslig grunnlag",
        "label_source": "Hvor opplysningene kommer fra",
        "heading_withdrawn": "Samtykker du har trukket tilbake",
        "withdrawn_note": "Du har trukket tilbake samtykket ditt. Vi bruker ikke lenger opplysningene dine "
                          "til dette formålet.",
        "heading_not_given": "Bare med ditt samtykke",
        "not_given_intro": "Du har ikke gitt samtykke til følgende, så det gjør vi ikke. "
                           "Hvis du ønsker det, kan du gi samtykke på din personlige side:",
        "heading_manage": "Administrer samtykkene og abonnementene dine",
        "manage_text": "På din personlige side kan du når som helst se samtykkene dine, gi eller trekke dem "
                       "tilbake og velge hvilke utsendelser du vil motta.",
        "button": "Åpne din personlige side",
        "link_expiry": "Lenken er personlig og gyldig til {date}. Vennligst ikke videresend denne e-posten.",
        "closing": "Med vennlig hilsen",
        "footer_auto": "Denne e-posten ble sendt automatisk fordi kontaktopplysningene dine ble registrert. "
                       "Du trenger ikke å svare.",
    },
    "sv": {
        "subject": "Så behandlar vi dina uppgifter",
        "greeting": "Hej {name},",
        "greeting_anonymous": "Hej,",
        "intro_registered": "Vi har registrerat dina kontaktuppgifter i vårt kundregister.",
        "intro_registered_company": "{company} har registrerat dina kontaktuppgifter i sitt kundregister.",
        "intro_rights": "Enligt EU:s dataskyddsförordning (GDPR) har du rätt att veta varför vi sparar dina "
                        "uppgifter, vilken rättslig grund vi har och varifrån uppgifterna kommer.",
        "heading_recorded": "Vad vi registrerar och varför",
        "recorded_intro": "Vi sparar dina uppgifter för följande ändamål:",
        "nothing_recorded": "Vi har ännu inte registrerat något ändamål för dina uppgifter.",
        "label_legal_basis": "Rättslig grund",
        "label_source": "Varifrån uppgifterna kommer",
        "heading_withdrawn": "Samtycken som du har återkallat",
        "withdrawn_note": "Du har återkallat ditt samtycke. Vi använder inte längre dina uppgifter för "
                          "detta ändamål.",
        "heading_not_given": "Endast med ditt samtycke",
        "not_given_intro": "Du har inte gett ditt samtycke till följande, så det gör vi inte. "
                           "Om du vill kan du ge ditt samtycke på din personliga sida:",
        "heading_manage": "Hantera dina samtycken och prenumerationer",
        "manage_text": "På din personliga sida kan du när som helst se dina samtycken, ge eller återkalla "
                       "dem och välja vilka utskick du vill få.",
        "button": "Öppna din personliga sida",
        "link_expiry": "Länken är personlig och giltig till {date}. Vidarebefordra inte detta "
                       "e-postmeddelande.",
        "closing": "Med vänliga hälsningar",
        "footer_auto": "Detta e-postmeddelande skickades automatiskt eftersom dina kontaktuppgifter har "
                       "registrerats. Du behöver inte svara.",
    },
    "da": {
        "subject": "Sådan behandler vi dine oplysninger",
        "greeting": "Kære {name},",
        "greeting_anonymous": "Hej,",
        "intro_registered": "Vi har registreret dine kontaktoplysninger i vores kunderegister.",
        "intro_registered_company": "{company} har registreret dine kontaktoplysninger i sit kunderegister.",
        "intro_rights": "Efter EU's databeskyttelsesforordning (GDPR) har du ret til at vide, hvorfor vi "
                        "opbevarer dine oplysninger, hvilket retsgrundlag vi har, og hvor oplysningerne "
                        "stammer fra.",
        "heading_recorded": "Hvad vi registrerer, og hvorfor",
        "recorded_intro": "Vi opbevarer dine oplysninger til følgende formål:",
        "nothing_recorded": "Vi har endnu ikke registreret noget formål for dine oplysninger.",
        "label_legal_basis": "Retsgrundlag",
        "label_source": "Hvor oplysningerne stammer fra",
        "heading_withdrawn": "Samtykker, du har trukket tilbage",
        "withdrawn_note": "Du har trukket dit samtykke tilbage. Vi bruger ikke længere dine oplysninger "
                          "til dette formål.",
        "heading_not_given": "Kun med dit samtykke",
        "not_given_intro": "Du har ikke givet samtykke til følgende, så det gør vi ikke. "
                           "Hvis du ønsker det, kan du give dit samtykke på din personlige side:",
        "heading_manage": "Administrer dine samtykker og abonnementer",
        "manage_text": "På din personlige side kan du til enhver tid se dine samtykker, give eller trække "
                       "dem tilbage og vælge, hvilke udsendelser du vil modtage.",
        "button": "Åbn din personlige side",
        "link_expiry": "Linket er personligt og gyldigt indtil {date}. Videresend venligst ikke denne e-mail.",
        "closing": "Med venlig hilsen",
        "footer_auto": "Denne e-mail er sendt automatisk, fordi dine kontaktoplysninger er blevet "
                       "registreret. Du behøver ikke at svare.",
    },
    "de": {
        "subject": "Wie wir mit Ihren Daten umgehen",
        "greeting": "Hallo {name},",
        "greeting_anonymous": "Guten Tag,",
        "intro_registered": "Wir haben Ihre Kontaktdaten in unserer Kundendatenbank gespeichert.",
        "intro_registered_company": "{company} hat Ihre Kontaktdaten in der Kundendatenbank gespeichert.",
        "intro_rights": "Nach der EU-Datenschutz-Grundverordnung (DSGVO) haben Sie das Recht zu erfahren, "
                        "warum wir Ihre Daten speichern, auf welcher Rechtsgrundlage und woher die Daten "
                        "stammen.",
        "heading_recorded": "Was wir speichern und warum",
        "recorded_intro": "Wir speichern Ihre Daten für folgende Zwecke:",
        "nothing_recorded": "Wir haben bisher keinen Zweck für Ihre Daten erfasst.",
        "label_legal_basis": "Rechtsgrundlage",
        "label_source": "Herkunft der Daten",
        "heading_withdrawn": "Einwilligungen, die Sie widerrufen haben",
        "withdrawn_note": "Sie haben Ihre Einwilligung widerrufen. Wir verwenden Ihre Daten nicht mehr "
                          "für diesen Zweck.",
        "heading_not_given": "Nur mit Ihrer Einwilligung",
        "not_given_intro": "Für Folgendes haben Sie keine Einwilligung erteilt, deshalb tun wir es nicht. "
                           "Wenn Sie möchten, können Sie Ihre Einwilligung auf Ihrer persönlichen Seite "
                           "erteilen:",
        "heading_manage": "Einwilligungen und Abonnements verwalten",
        "manage_text": "Auf Ihrer persönlichen Seite können Sie jederzeit Ihre Einwilligungen einsehen, "
                       "erteilen oder widerrufen und auswählen, welche Aussendungen Sie erhalten möchten.",
        "button": "Ihre persönliche Seite öffnen",
        "link_expiry": "Dieser Link ist persönlich und gültig bis {date}. Bitte leiten Sie diese E-Mail "
                       "nicht weiter.",
        "closing": "Mit freundlichen Grüßen",
        "footer_auto": "Diese E-Mail wurde automatisch versendet, weil Ihre Kontaktdaten gespeichert wurden. "
                       "Sie müssen nicht antworten.",
    },
    "nl": {
        "subject": "Hoe wij met uw gegevens omgaan",
        "greeting": "Beste {name},",
        "greeting_anonymous": "Geachte heer, mevrouw,",
        "intro_registered": "Wij hebben uw contactgegevens in ons klantenbestand opgenomen.",
        "intro_registered_company": "{company} heeft uw contactgegevens in het klantenbestand opgenomen.",
        "intro_rights": "Op grond van de Algemene verordening gegevensbescherming (AVG) hebt u het recht "
                        "te weten waarom wij uw gegevens bewaren, op welke rechtsgrond en waar de gegevens "
                        "vandaan komen.",
        "heading_recorded": "Wat wij vastleggen en waarom",
        "recorded_intro": "Wij bewaren uw gegevens voor de volgende doeleinden:",
        "nothing_recorded": "Wij hebben nog geen doel voor uw gegevens vastgelegd.",
        "label_legal_basis": "Rechtsgrond",
        "label_source": "Herkomst van de gegevens",
        "heading_withdrawn": "Toestemmingen die u hebt ingetrokken",
        "withdrawn_note": "U hebt uw toestemming ingetrokken. Wij gebruiken uw gegevens niet meer voor "
                          "dit doel.",
        "heading_not_given": "Alleen met uw toestemming",
        "not_given_intro": "Voor het volgende hebt u geen toestemming gegeven, dus doen wij dit niet. "
                           "Als u dat wilt, kunt u op uw persoonlijke pagina toestemming geven:",
        "heading_manage": "Uw toestemmingen en abonnementen beheren",
        "manage_text": "Op uw persoonlijke pagina kunt u op elk moment uw toestemmingen bekijken, geven of "
                       "intrekken en kiezen welke mailings u wilt ontvangen.",
        "button": "Open uw persoonlijke pagina",
        "link_expiry": "Deze link is persoonlijk en geldig tot {date}. Stuur deze e-mail alstublieft "
                       "niet door.",
        "closing": "Met vriendelijke groet,",
        "footer_auto": "Deze e-mail is automatisch verzonden omdat uw contactgegevens zijn geregistreerd. "
                       "U hoeft niet te antwoorden.",
    },
}

# (date pattern, month names January..December) per language.
DATES: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "en": ("{day} {month} {year}", ("January", "February", "March", "April", "May", "June", "July",
                                    "August", "September", "October", "November", "December")),
    "nb": ("{day}. {month} {year}", ("januar", "februar", "mars", "april", "mai", "juni", "juli",
                                     "august", "september", "oktober", "november", "desember")),
    "sv": ("{day} {month} {year}", ("januari", "februari", "mars", "april", "maj", "juni", "juli",
                                    "augusti", "september", "oktober", "november", "december")),
    "da": ("{day}. {month} {year}", ("januar", "februar", "marts", "april", "maj", "juni", "juli",
                                     "august", "september", "oktober", "november", "december")),
    "de": ("{day}. {month} {year}", ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli",
                                     "August", "September", "Oktober", "November", "Dezember")),
    "nl": ("{day} {month} {year}", ("januari", "februari", "maart", "april", "mei", "juni", "juli",
                                    "augustus", "september", "oktober", "november", "december")),
}


def format_date(value: date, language: str) -> str:
    """Write a date the way ``language`` writes it in running text ("21. mars 2026").

    Args:
        value: the date (a datetime is taken in its own time zone).
        language: a code in ``TEXTS``; anything else is written in English.
    """
    pattern, months = DATES.get(language, DATES["en"])
    return pattern.format(day=value.day, month=months[value.month - 1], year=value.year)
